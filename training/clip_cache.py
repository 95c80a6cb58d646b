"""Disk cache of per-clip training arrays, shared by both feature families.

A cache lives under `root/<config hash>/`, where the config names everything that changes
what a clip turns into (frontend or embedding settings, augmentation, noise and speech
material). One entry per clip and copy count, keyed by the file's content (or a generated
clip's seed), written atomically; a damaged entry is recomputed. Subclasses only say how a
clip becomes an array (`_compute`) and what an empty result looks like (`empty`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from keywire.protocol.errors import AudioError

from .dataset import SILENCE, Clip

log = logging.getLogger("keywire.training")


@dataclasses.dataclass
class CacheStats:
    """What one extraction did: clips computed, read from the cache, skipped (with why)."""

    computed: int = 0
    cached: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)


def file_id(path: str) -> str:
    """A cheap identity for a material file (name and size) in a cache config."""
    return Path(path).name + ":" + str(Path(path).stat().st_size)


def bed_id(bed: Any) -> str:
    """Identity of a stream bed (its files and shares): a different bed is a different copy."""
    return hashlib.sha1(json.dumps([[file_id(f) for f in bed.files],
                                    bed.weights.round(9).tolist()]).encode()).hexdigest()


class ClipCache:
    """Per-clip arrays under `root/<hash of config>/`; see the module docstring."""

    #: How a generated `_unknown_` clip is named in its entry key (kept per family so that
    #: existing caches stay valid).
    generated_speech_tag = "speech"

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.root = Path(root) / self.key
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()

    def _file_key(self, clip: Clip, copies: int) -> str:
        if clip.is_generated:
            tag = "silence" if clip.label == SILENCE else self.generated_speech_tag
            ident = f"{tag}:{clip.generated_seed}"
        else:
            ident = hashlib.sha1(Path(clip.path).read_bytes()).hexdigest()
        return hashlib.sha1(f"{ident}|{copies}".encode()).hexdigest()

    def get(self, clip: Clip, copies: int) -> Optional[np.ndarray]:
        """The clip's array [1 + copies, ...], or None when its file is unusable (reported
        by name in `stats.skipped`)."""
        try:
            key = self._file_key(clip, copies)
        except OSError as exc:
            self.stats.skipped.append(f"{clip.path}: {exc.strerror}")
            return None
        path = self.root / key[:2] / f"{key}.npy"
        if path.exists():
            try:
                arr = np.load(path)
                self.stats.cached += 1
                return arr
            except (OSError, ValueError):
                pass  # damaged cache entry: recompute
        try:
            arr = self._compute(clip, copies, int(key[:8], 16))
        except AudioError as exc:
            self.stats.skipped.append(str(exc))
            log.warning("skipped %s", exc)
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
        self.stats.computed += 1
        return arr

    def _compute(self, clip: Clip, copies: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def empty(self, copies: int) -> np.ndarray:
        """The result of extracting no clips: shape [0, 1 + copies, ...]."""
        raise NotImplementedError


def extract(clips: Sequence[Clip], cache: ClipCache, copies: int,
            progress: Optional[Callable[[int, int], None]] = None) -> tuple[np.ndarray, list[Clip]]:
    """Arrays of many clips: (array [n, 1 + copies, ...], the clips kept)."""
    arrays, kept = [], []
    for i, c in enumerate(clips):
        a = cache.get(c, copies)
        if a is not None:
            arrays.append(a)
            kept.append(c)
        if progress:
            progress(i + 1, len(clips))
    if not arrays:
        return cache.empty(copies), kept
    return np.stack(arrays), kept


def check_train_classes(ys_train: np.ndarray, classes: Sequence[str]) -> None:
    """Refuse a training split that has no usable clips, or none for some class."""
    from keywire.protocol.errors import ConfigError

    if len(ys_train) == 0:
        raise ConfigError("no usable training clips (every file was skipped)")
    for i, k in enumerate(classes):
        if not np.any(ys_train == i):
            raise ConfigError(f"class {k!r} has no usable training clips")
