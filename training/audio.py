"""Training clips: a WAV as mono int16 at the frontend's rate (`agent.audio_io`), fitted to a length."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keywire.agent.audio_io import read_wav
from keywire.protocol.errors import AudioError


def load_clip(path: Path | str, rate: int) -> np.ndarray:
    """A clip as int16 at `rate` Hz (any length; read and resampled by `audio_io.read_wav`)."""
    x = read_wav(path, rate)
    if len(x) == 0:
        raise AudioError(f"{path}: WAV file has no samples")
    return x


def fit_length(x: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Centre `x` in `length` samples, shifted by `offset` (zero padding, cropping)."""
    if len(x) > length:  # keep the loudest part: crop around the energy centroid
        e = x.astype(np.float32) ** 2
        c = int(np.sum(np.arange(len(x)) * e) / max(float(e.sum()), 1e-9))
        lo = min(max(0, c - length // 2), len(x) - length)
        x = x[lo:lo + length]
    out = np.zeros(length, dtype=np.int16)
    start = (length - len(x)) // 2 + offset
    src0 = max(0, -start)
    dst0 = max(0, start)
    n = min(len(x) - src0, length - dst0)
    if n > 0:
        out[dst0:dst0 + n] = x[src0:src0 + n]
    return out


def load_noise(path: Path | str, rate: int) -> np.ndarray:
    """A background-noise recording as float32 (int16 scale) at `rate` Hz."""
    return load_clip(path, rate).astype(np.float32)
