"""Training data for the speech-embedding family: stream-like windows, embedded and cached.

A head reads the last N 96-d speech embeddings (one every 80 ms, each over the last 775 ms
of audio). A head trained on zero-padded clips fails in a stream, so every training window
looks like one: the clip sits inside context of noise, other speakers' words and
keyword-free speech (never digital silence), and the window ends at one of a few positions
shortly after the clip, so a head also learns to fire over several steps in a row.

Each clip gives an array [1 + copies, N + SHIFTS - 1, 96]: copy 0 is the clip in its own
background (exactly what `clip_window` builds for evaluation), the others are augmented
copies (`augment._shaped` + noise / babble context, or `augment.stream_mix`). Training picks
one of SHIFTS windows of N embeddings per example. Embeddings come from the agent's own
frontend (`keywire.agent.frontend.embedding`) and are cached by settings and file hash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .audio import fit_length, load_clip
from .clip_cache import CacheStats, ClipCache, bed_id, check_train_classes, extract, file_id  # noqa: F401
from .augment import NoiseBank, _dbfs_to_rms, _shaped, make_silence, make_speech_window
from .dataset import SILENCE, Clip
from .recipe import AugmentationSettings
from .streams import BackgroundPool, StreamConfig, add_at_snr, background_bed, voiced_span

log = logging.getLogger("keywire.training")

EMBEDDING_VERSION = "1"    # bump when window building changes meaning
STEP = 1280                # samples per embedding (80 ms at 16 kHz)
RECEPTIVE = 12800          # samples from a fresh stream to its first embedding (agent: 10 blocks of 80 ms)
SHIFTS = 6                 # window end positions stored per copy, 80 ms apart
POST_MS = 320              # context after the clip: windows end 320, 240, ..., -80 ms around its end
EVAL_SHIFT = 2             # window `clip_window` evaluates (ends 160 ms after the clip)
FLOOR_DBFS = -78.0         # quietest context: a room is never digitally silent

Embedder = Callable[[Sequence[np.ndarray]], list]


def agent_embedder() -> Embedder:
    """The agent's `compute_embeddings_batch` (fresh state per clip): what the device runs."""
    from keywire.agent.frontend.embedding import compute_embeddings_batch

    return compute_embeddings_batch


def embedding_model_sha256() -> str:
    """sha256 of the embedding model the agent uses (part of every cache key and head)."""
    from keywire.agent.frontend.embedding import feature_models

    fm = feature_models()
    sha = getattr(fm, "embedding_sha256", None)
    if sha is None and isinstance(fm, dict):
        sha = fm.get("embedding_sha256")
    if sha is None:
        path = getattr(fm, "embedding", None) or getattr(fm, "embedding_path", None)
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return str(sha)


def window_samples(n_embeddings: int, sample_length: int) -> tuple[int, int]:
    """(total samples, samples before the clip) of a training window: a multiple of the
    80 ms step giving `n_embeddings` + SHIFTS embeddings (the first, whose mel frames still
    see the fresh stream's start, is dropped), the last ending exactly at the window's end."""
    total = RECEPTIVE + STEP * (n_embeddings + SHIFTS - 1)
    post = POST_MS * 16
    if total - post - sample_length < 0:
        total += STEP * ((sample_length + post - total + STEP - 1) // STEP)
    return total, total - post - sample_length


def floor_noise(rng: np.random.Generator, n: int, dbfs: float) -> np.ndarray:
    """White noise at `dbfs` RMS: the quietest context, never zeros."""
    return rng.standard_normal(n) * _dbfs_to_rms(dbfs)


def noise_floor_dbfs(x: np.ndarray, frame: int = 160) -> float:
    """Level of a clip's own background: RMS of its quietest 10 % of 10 ms frames."""
    n = len(x) // frame
    if n == 0:
        return FLOOR_DBFS
    e = np.sort(np.mean(x[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    r = float(np.sqrt(np.mean(e[:max(1, n // 10)])))
    return max(FLOOR_DBFS, 20 * np.log10(max(r, 1e-9) / 32767.0))


def clip_window(x: np.ndarray, n_embeddings: int, sample_length: int, seed: int = 0) -> np.ndarray:
    """A clip as a single utterance in a quiet room: fitted to `sample_length`, preceded and
    followed by white noise at its own background level (deterministic for a seed)."""
    clip = fit_length(np.asarray(x, dtype=np.int16), sample_length).astype(np.float64)
    total, pre = window_samples(n_embeddings, sample_length)
    rng = np.random.default_rng(seed)
    y = floor_noise(rng, total, noise_floor_dbfs(clip))
    y[pre:pre + sample_length] += clip
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def eval_embeddings(x: np.ndarray, n_embeddings: int, sample_length: int,
                    embed: Optional[Embedder] = None) -> np.ndarray:
    """The N embeddings a head scores for one clip in `keywire evaluate` (float32 [N, 96])."""
    e = np.asarray((embed or agent_embedder())([clip_window(x, n_embeddings, sample_length)])[0], np.float32)
    end = len(e) - EVAL_SHIFT
    return e[end - n_embeddings:end]


def context_window(x: np.ndarray, rng: np.random.Generator, a: AugmentationSettings, noise: NoiseBank,
                   speech: NoiseBank, bed: Optional[BackgroundPool], n_embeddings: int, length: int,
                   rate: int) -> np.ndarray:
    """One augmented training window: the shaped clip inside context. With
    `a.stream_probability` (and a bed) the context is a stream bed of noise, other speakers'
    words and background speech with the clip `a.stream_snr_db` above it; otherwise noise or
    (`a.babble_probability`) keyword-free speech at `a.noise_dbfs` under the whole window,
    over a floor of faint white noise."""
    total, pre = window_samples(n_embeddings, length)
    y = _shaped(x, rng, a, length, rate).astype(np.float64)
    if bed is not None and rng.random() < a.stream_probability:
        lo, hi = a.stream_dbfs
        config = StreamConfig(sample_rate=rate, background_dbfs=(lo + hi) / 2, background_jitter_db=(hi - lo) / 2)
        mix = background_bed(bed, total, rng, config) + floor_noise(rng, total, FLOOR_DBFS)
        span = voiced_span(y.astype(np.int16), rate)
        add_at_snr(mix, mix.copy(), y, span, pre + span[0], float(rng.uniform(*a.stream_snr_db)),
                   _dbfs_to_rms(lo - 30.0), rate)
        return np.clip(np.round(mix), -32768, 32767).astype(np.int16)
    out = floor_noise(rng, total, float(rng.uniform(FLOOR_DBFS, -60.0)))
    out[pre:pre + length] += y
    if rng.random() < a.noise_probability:
        bank = speech if speech.recordings and rng.random() < a.babble_probability else noise
        n = bank.snippet(rng, total)
        if n is not None:
            out += n * _dbfs_to_rms(float(rng.uniform(*a.noise_dbfs)))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


EmbeddingStats = CacheStats  # the name callers know


class EmbeddingCache(ClipCache):
    """Disk cache of per-clip embedding windows under `root/<settings hash>/` (float16)."""

    def __init__(self, root: Path, n_embeddings: int, sample_length: int, rate: int,
                 aug: AugmentationSettings, noise: NoiseBank, noise_files: Sequence[str],
                 speech: NoiseBank = NoiseBank(()), speech_files: Sequence[str] = (),
                 bed: Optional[BackgroundPool] = None, embed: Optional[Embedder] = None,
                 embedding_sha256: Optional[str] = None) -> None:
        self.n, self.length, self.rate = n_embeddings, sample_length, rate
        self.aug, self.noise, self.speech = aug, noise, speech
        self.bed = bed if aug.stream_probability > 0 else None
        self.embed = embed or agent_embedder()
        cfg = {"n": n_embeddings, "len": sample_length, "rate": rate, "v": EMBEDDING_VERSION,
               "model": embedding_sha256 or embedding_model_sha256(),
               "aug": dataclasses.asdict(aug), "noise": [file_id(f) for f in noise_files],
               "speech": [file_id(f) for f in speech_files]}
        if self.bed is not None:
            cfg["bed"] = bed_id(self.bed)
        super().__init__(root, cfg)

    def empty(self, copies: int) -> np.ndarray:
        return np.zeros((0, 1 + copies, self.n + SHIFTS - 1, 96), np.float16)

    generated_speech_tag = "speechword"

    def _compute(self, clip: Clip, copies: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if clip.is_generated and clip.label == SILENCE:
            raw = make_silence(clip.generated_seed or 0, self.noise, self.length)
        elif clip.is_generated:
            raw = speech_word(clip.generated_seed or 0, self.speech, self.length)
        else:
            raw = load_clip(clip.path, self.rate)
        waves = [clip_window(raw, self.n, self.length, seed)]
        for _ in range(copies):
            if clip.is_generated and clip.label == SILENCE:
                quiet = make_silence(int(rng.integers(1 << 31)), self.noise, self.length)
                waves.append(context_window(quiet, rng, dataclasses.replace(self.aug, babble_probability=0.0),
                                            self.noise, self.speech, None, self.n, self.length, self.rate))
            else:
                waves.append(context_window(raw, rng, self.aug, self.noise, self.speech, self.bed, self.n,
                                            self.length, self.rate))
        keep = self.n + SHIFTS - 1
        out = []
        for e in self.embed(waves):
            e = np.asarray(e, np.float32)
            if len(e) < keep:
                raise ValueError(f"embedding frontend returned {len(e)} embeddings, expected >= {keep}")
            out.append(e[-keep:])
        return np.stack(out).astype(np.float16)


def speech_word(seed: int, speech: NoiseBank, length: int) -> np.ndarray:
    """An `_unknown_` example from keyword-free speech: a whole recording when it is shorter
    than `length` (an isolated word, as DSPSpeech-20's; its context comes from the window),
    else a random `length` window with voice in it (`augment.make_speech_window`)."""
    rng = np.random.default_rng(seed)
    if not speech.recordings:
        return np.zeros(length, dtype=np.int16)
    rec = speech.recordings[int(rng.integers(len(speech.recordings)))]
    if len(rec) > length:
        return make_speech_window(seed, NoiseBank((rec,)), length)
    x = np.asarray(rec, np.float64)
    x = x / max(float(np.sqrt(np.mean(x * x))), 1e-6) * _dbfs_to_rms(float(rng.uniform(-40, -20)))
    return fit_length(np.clip(np.round(x), -32768, 32767).astype(np.int16), length)


def prepare(recipe, dataset, cache_root: Optional[Path] = None, progress=None, embed: Optional[Embedder] = None):
    """`train.PreparedData` for a speech_embedding recipe: train x [n, 1 + copies, N + SHIFTS - 1, 96]
    (a window is picked per example at every step), validation/test x [n, 1, N, 96] (the
    window `clip_window` evaluates), as float32."""
    import time

    from .augment import noise_bank
    from .dataset import SPLITS
    from .features import default_cache_dir
    from .train import PreparedData, stream_bed

    fe, n = recipe.frontend, recipe.embedding_frames
    rate = fe.sample_rate_hz
    speech_files = list(dataset.speech_files)
    root = Path(cache_root) / "embeddings" if cache_root else default_cache_dir().parent / "embeddings"
    cache = EmbeddingCache(root, n, fe.sample_length, rate,
                           recipe.augmentation, noise_bank(dataset.noise_files, rate), dataset.noise_files,
                           noise_bank(speech_files, rate), speech_files,
                           stream_bed(dataset, rate) if recipe.augmentation.stream_probability > 0 else None, embed)
    xs, ys, kept_all = {}, {}, {}
    for split in SPLITS:
        copies = recipe.augmentation.copies if split == "train" else 0
        last = [time.monotonic()]

        def tick(i: int, total: int) -> None:
            if progress and (time.monotonic() - last[0] > 5 or i == total):
                last[0] = time.monotonic()
                progress(f"embeddings {split}: {i}/{total} clips")

        x, kept = extract(dataset.clips[split], cache, copies, tick)
        x = x.astype(np.float32)
        if split != "train":
            end = x.shape[2] - EVAL_SHIFT
            x = x[:, :1, end - n:end]
        xs[split] = x
        ys[split] = np.array([recipe.classes.index(k.label) for k in kept], dtype=np.int64)
        kept_all[split] = kept
    check_train_classes(ys["train"], recipe.classes)
    return PreparedData(xs, ys, kept_all, list(dataset.noise_files), cache.stats.skipped, cache.stats.computed,
                        cache.stats.cached, speech_files)


def pick_windows(x: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """One window of `n` embeddings per example from [b, N + SHIFTS - 1, 96], at a random
    end position (a stream fires over several steps); windows of exactly `n` pass through."""
    if x.shape[1] == n:
        return x
    ends = x.shape[1] - rng.integers(0, x.shape[1] - n + 1, size=len(x))
    return np.stack([e[end - n:end] for e, end in zip(x, ends)])
