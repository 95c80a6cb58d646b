"""Reading training clips: WAV to mono int16 at the frontend's rate, fixed length."""
from __future__ import annotations

import wave
from math import gcd
from pathlib import Path

import numpy as np

from keywire.agent.errors import AudioError


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate of a PCM WAV (8/16/24/32-bit); `AudioError` naming the file otherwise."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            n_ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioError(f"{p}: not a readable PCM WAV file ({exc})") from exc
    if rate <= 0 or n_ch <= 0:
        raise AudioError(f"{p}: invalid WAV header")
    usable = len(raw) // (width * n_ch) * width * n_ch
    raw = raw[:usable]
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise AudioError(f"{p}: unsupported sample width {width} bytes")
    x = x.reshape(-1, n_ch).mean(axis=1) if n_ch > 1 else x
    return np.asarray(x, dtype=np.int16), rate


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling of int16 audio (scipy), saturated back to int16."""
    if src == dst:
        return x
    from scipy.signal import resample_poly

    g = gcd(src, dst)
    y = resample_poly(x.astype(np.float32), dst // g, src // g)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def load_clip(path: Path | str, rate: int) -> np.ndarray:
    """A clip as int16 at `rate` Hz (any length)."""
    x, src = read_wav(path)
    if len(x) == 0:
        raise AudioError(f"{path}: WAV file has no samples")
    return resample(x, src, rate)


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
