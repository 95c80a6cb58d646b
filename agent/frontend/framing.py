"""Samples into frames: the stage every feature family starts with.

The microfrontend and MFCC cut a stream the same way: frame k covers samples
[k*step, k*step + size); a streaming frontend keeps the samples of the next, incomplete
frame between calls. `FrameBuffer` is that one piece of streaming state; `frames_of` is the
whole-clip form (any leading axes, e.g. a batch of clips). The microfrontend's two
sample-level steps before the FFT live here too: the DC notch filter and the Q12 Hann window.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from keywire.protocol.errors import AudioError

WINDOW_BITS = 12          # kFrontendWindowBits: Q12 window coefficients


def as_int16_mono(samples: np.ndarray) -> np.ndarray:
    """The samples as a 1-D int16 array; `AudioError` for float, out-of-range or multi-channel data."""
    x = np.asarray(samples)
    if x.ndim > 1:
        if x.ndim == 2 and 1 in x.shape:
            x = x.reshape(-1)
        else:
            raise AudioError(f"the frontend needs mono samples, got an array of shape {x.shape}")
    if x.dtype == np.int16:
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise AudioError(f"the frontend needs int16 samples, got {x.dtype}")
    if x.size and (x.min() < -32768 or x.max() > 32767):
        raise AudioError(f"sample values outside int16 ({int(x.min())}..{int(x.max())})")
    return x.astype(np.int16)


def frame_count(length: int, size: int, step: int) -> int:
    """Number of complete frames in `length` samples: (length - size) // step + 1, or 0."""
    return 0 if length < size else (length - size) // step + 1


def frames_of(x: np.ndarray, size: int, step: int) -> np.ndarray:
    """View of the complete frames along the last axis: [..., samples] -> [..., frames, size]."""
    n = frame_count(x.shape[-1], size, step)
    if n == 0:
        return np.zeros(x.shape[:-1] + (0, size), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, size, axis=-1)[..., ::step, :][..., :n, :]


class FrameBuffer:
    """Streaming framing: `push(samples)` returns the frames completed by them and keeps
    the samples the next frame still needs."""

    def __init__(self, size: int, step: int) -> None:
        self.size, self.step = size, step
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, x: np.ndarray) -> np.ndarray:
        """int16 samples -> the newly complete frames [n, size] (a copy-free view where possible)."""
        buf = np.concatenate([self._buf, x]) if len(self._buf) else np.asarray(x, dtype=np.int16)
        frames = frames_of(buf, self.size, self.step)
        self._buf = buf[len(frames) * self.step:].copy()
        return frames


# ------------------------------------------------------------------ Q12 Hann window
def hann_q12(size: int) -> np.ndarray:
    """MLTK's window: float arg = 2*pi/size; v = (float)(0.5 - 0.5*cosf(arg*(i+0.5)));
    coefficient = floor(v * 4096 + 0.5). cosf is taken as the correctly rounded float cos."""
    arg = np.float64(np.float32(math.pi * 2.0 / float(np.float32(size))))
    x = (arg * (np.arange(size, dtype=np.float64) + 0.5)).astype(np.float32)
    cosf = np.cos(x.astype(np.float64)).astype(np.float32)
    v = (0.5 - 0.5 * cosf.astype(np.float64)).astype(np.float32)
    v = v * np.float32(1 << WINDOW_BITS)
    return np.floor(v.astype(np.float64) + 0.5).astype(np.int32)


# ------------------------------------------------------------------ DC notch
def wrap16(x: np.ndarray) -> np.ndarray:
    """int16 store (two's complement wrap) of an int32 array."""
    return (x << 16) >> 16


def dc_notch_coefficient(coefficient: float) -> int:
    """fe.dc_notch_filter_coefficient in Q15 as the microfrontend stores it (int16)."""
    c = int(np.float32(coefficient) * np.float32(1 << 15))
    return ((c + 32768) & 0xFFFF) - 32768


@lru_cache(maxsize=4)
def _dc_feedback(coef: int) -> list:
    """feedback[y] = MLTK's ((coef * y >> 14) + 1) >> 1 for int16 y, as a list laid out so that
    Python's negative indices address it: feedback[y] is right for y in -32768..32767 and, because
    the list has 65536 entries, also for any unwrapped y in -65536..65535 (it then reads the entry
    of int16(y)), which lets the per-sample loop skip the int16 wrap."""
    ys = np.concatenate([np.arange(0, 32768), np.arange(-32768, 0)]).astype(np.int64)
    return ((((coef * ys) >> 14) + 1) >> 1).tolist()


def dc_notch(x: np.ndarray, coef: int, prev_in: int, prev_out: int) -> tuple[np.ndarray, int, int]:
    """MLTK's DC notch over one stream: y[n] = int16(x[n] - x[n-1] + round(coef * y[n-1] / 2^15)).
    The recursion is nonlinear (rounding, wrap), so it runs per sample; returns (y, last x, last y)."""
    if len(x) == 0:
        return x.astype(np.int16), prev_in, prev_out
    xi = x.astype(np.int32)
    d = np.empty(len(xi), dtype=np.int32)
    d[0] = xi[0] - prev_in
    np.subtract(xi[1:], xi[:-1], out=d[1:])
    fb = _dc_feedback(coef)
    y = prev_out
    raw = np.fromiter((y := di + fb[y] for di in wrap16(d).tolist()), dtype=np.int32, count=len(d))
    out = wrap16(raw).astype(np.int16)
    return out, int(xi[-1]), int(out[-1])


def dc_notch_batch(x: np.ndarray, coef: int) -> np.ndarray:
    """The DC notch over many clips [b, samples] at once (fresh state), vectorised over clips."""
    xi = x.astype(np.int32)
    d = np.empty_like(xi)
    d[:, 0] = xi[:, 0]
    d[:, 1:] = xi[:, 1:] - xi[:, :-1]
    d = wrap16(d)
    out = np.empty_like(d)
    y = np.zeros(x.shape[0], dtype=np.int32)
    for n in range(x.shape[1]):
        y = wrap16(d[:, n] + ((((coef * y) >> 14) + 1) >> 1))
        out[:, n] = y
    return out.astype(np.int16)
