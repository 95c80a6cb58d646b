"""Hard negatives: moments of keyword-free speech that a trained head mistakes for a keyword.

A head trained once fires on some of the recipe's keyword-free speech (`background_speech`)
although that speech holds no keyword. `mine` strings those recordings into one stream (as a
device hears people talking near it), computes its embeddings, scores every window with the
head and keeps, for each run of windows where a keyword reaches `probability`, the window at
its peak. `train.train` then trains again from scratch with those windows as `_unknown_`
examples (`Recipe.hard_negative_probability`); false accepts on other speakers' speech fall,
see docs/BENCHMARKS.md. Speech-embedding recipes only: a window is cut from the stream's
embeddings, so no audio has to be re-rendered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .audio import load_clip

MERGE_GAP = 3        # windows (80 ms each) between two hits of one event
GAP_S = (0.3, 1.0)   # quiet between two recordings of the stream
GAP_DBFS = -60.0     # level of the faint noise in those gaps


@dataclass(frozen=True)
class MinedNegatives:
    """What `mine` found: `blocks` [m, frames, 96] float32 of embeddings, one per event,
    holding every training window position (see `embeddings.pick_windows`) around its peak."""

    blocks: np.ndarray
    hours: float
    windows_over: int                     # windows at or above the probability
    by_keyword: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"events": int(len(self.blocks)), "windows_over": self.windows_over,
                "stream_hours": round(self.hours, 3), "by_keyword": dict(self.by_keyword)}


def keyword_free_stream(files: Sequence[str | Path], seed: int = 0, rate: int = 16000,
                        tail_s: float = 1.0) -> np.ndarray:
    """int16 stream of every recording in `files` (in the order given), each preceded by
    0.3-1.0 s of faint noise, ending in `tail_s` of zeros (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    floor = 32767 * 10 ** (GAP_DBFS / 20)
    parts: list[np.ndarray] = []
    for p in files:
        gap = int(rng.uniform(*GAP_S) * rate)
        parts.append((rng.standard_normal(gap) * floor).astype(np.int16))
        parts.append(load_clip(p, rate))
    parts.append(np.zeros(int(tail_s * rate), np.int16))
    return np.concatenate(parts)


def peaks(top: np.ndarray, probability: float, gap: int = MERGE_GAP) -> list[int]:
    """Index of the highest window of each run of windows with `top` >= `probability`
    (hits at most `gap` windows apart are one run)."""
    hits = np.flatnonzero(top >= probability)
    out: list[int] = []
    start = 0
    for i in range(1, len(hits) + 1):
        if i == len(hits) or hits[i] - hits[i - 1] > gap:
            run = hits[start:i]
            out.append(int(run[np.argmax(top[run])]))
            start = i
    return out


def mine(score: Callable[[np.ndarray], np.ndarray], embeddings: np.ndarray, n_frames: int, block_frames: int,
         classes: Sequence[str], keywords: Sequence[str], probability: float, rate: int = 16000,
         step_samples: int = 1280) -> MinedNegatives:
    """Hard negatives of one keyword-free embedding stream [T, 96]: `score` maps windows
    [b, n_frames, 96] to class probabilities [b, classes]. Each event's block of
    `block_frames` embeddings reaches (block_frames - n_frames + 1) // 2 embeddings past the
    peak window, so the training windows drawn from it lie around the moment the head fired."""
    kw = [classes.index(k) for k in keywords]
    hours = len(embeddings) * step_samples / rate / 3600
    empty = np.zeros((0, block_frames, embeddings.shape[-1]), np.float32)
    if len(embeddings) < n_frames:
        return MinedNegatives(empty, hours, 0)
    windows = np.lib.stride_tricks.sliding_window_view(embeddings, (n_frames, embeddings.shape[1]))[:, 0]
    probs = np.concatenate([np.asarray(score(windows[i:i + 1024])) for i in range(0, len(windows), 1024)])
    top = probs[:, kw].max(axis=1)
    after = (block_frames - n_frames + 1) // 2
    blocks, by = [], {}
    for p in peaks(top, probability):
        end = p + n_frames - 1 + after       # last embedding of the block
        if end - block_frames + 1 < 0 or end >= len(embeddings):
            continue
        blocks.append(embeddings[end - block_frames + 1:end + 1])
        word = keywords[int(np.argmax(probs[p, kw]))]
        by[word] = by.get(word, 0) + 1
    out = np.stack(blocks).astype(np.float32) if blocks else empty
    return MinedNegatives(out, hours, int(np.sum(top >= probability)), dict(sorted(by.items())))


def mine_speech(model: Any, speech_files: Sequence[str], n_frames: int, block_frames: int,
                classes: Sequence[str], keywords: Sequence[str], probability: float, seed: int,
                embed: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> MinedNegatives:
    """`mine` over the keyword-free recordings `speech_files` with a Keras head `model`."""
    if embed is None:
        from keywire.agent.frontend.embedding import compute_embeddings as embed
    stream = keyword_free_stream(sorted(speech_files), seed)
    emb = np.asarray(embed(stream), np.float32)
    return mine(lambda w: model(w, training=False), emb, n_frames, block_frames, classes, keywords, probability)
