"""Features into a model's int8 input: MLTK's static or dynamic mapping of the microfrontend's
uint16 values, and TFLite's own quantisation for float (MFCC) features."""
from __future__ import annotations

from functools import lru_cache
from typing import Union

import numpy as np

from keywire.protocol.errors import ParamsError
from keywire.protocol.frontend_settings import FrontendSettings

# ln(10)/20, as MLTK writes it for the dynamic int8 range.
_LN10_DIV_20 = 0.11512925465


def dynamic_scale_range(settings: FrontendSettings) -> int:
    """MLTK's int8 dynamic range in uint16 units: range_db * 2^log_scale_shift * ln(10)/20."""
    f32 = np.float32
    return int(float(f32(settings.quantize_dynamic_scale_range_db) * f32(1 << settings.log_scale_shift))
               * _LN10_DIV_20)


def to_model_input(features: np.ndarray, settings: FrontendSettings) -> np.ndarray:
    """int8 model input from uint16 features [frames, ch] the way MLTK derives it.

    Static (TFLM micro_speech): q = clamp((u16*256 + 333) // 666 - 128).
    `fe.quantize_dynamic_scale_enable`: over the whole given window, mn = max(max - R, 0),
    q = clamp(trunc((u16 - mn) * 255 / max(max - mn, 1)) - 128) with R = dynamic_scale_range().
    """
    if not settings.quantize_dynamic_scale_enable:
        f = np.asarray(features)
        if f.dtype == np.uint16:   # the agent's case: one table lookup per value
            return _static_int8_lut().take(f)
    u = np.asarray(features).astype(np.int64)
    if settings.quantize_dynamic_scale_enable:
        maxval = max(int(u.max()) if u.size else 0, 0)
        minval = max(maxval - dynamic_scale_range(settings), 0)
        span = max(maxval - minval, 1)
        a = (u - minval) * 255
        q = np.where(a >= 0, a // span, -((-a) // span)) - 128
    else:
        q = (u * 256 + 333) // 666 - 128
    return np.clip(q, -128, 127).astype(np.int8)


@lru_cache(maxsize=1)
def _static_int8_lut() -> np.ndarray:
    """The static int8 mapping of every uint16 value (computed by the formula above)."""
    u = np.arange(1 << 16, dtype=np.int64)
    lut = np.clip((u * 256 + 333) // 666 - 128, -128, 127).astype(np.int8)
    lut.flags.writeable = False
    return lut


def to_model_input_mfcc(values: np.ndarray, scale: float, zero_point: int,
                        dtype: Union[type, np.dtype] = np.int8) -> np.ndarray:
    """Quantise float features with the model input's own (scale, zero_point), as
    TFLite's quantize does: q = clamp(round_half_away(v / scale) + zero_point)."""
    return FloatQuantizer(np.shape(values), scale, zero_point, dtype)(values).copy()


class FloatQuantizer:
    """`to_model_input_mfcc` for one input shape, computed into buffers kept between calls
    (no temporary arrays): a head's input at every inference step. The returned array is
    overwritten by the next call."""

    def __init__(self, shape: tuple[int, ...], scale: float, zero_point: int,
                 dtype: Union[type, np.dtype] = np.int8) -> None:
        if scale <= 0:
            raise ParamsError(f"model input scale must be positive for float features, got {scale}")
        info = np.iinfo(dtype)
        self._scale, self._zero_point = float(scale), float(int(zero_point))
        # clamped before the zero point is added: the same integers, one operation fewer
        self._lo, self._hi = info.min - self._zero_point, info.max - self._zero_point
        self._v = np.zeros(shape, dtype=np.float64)
        self._half = np.zeros(shape, dtype=np.float64)
        self._q = np.zeros(shape, dtype=dtype)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        self.into(np.reshape(values, self._q.shape), self._q)
        return self._q

    def into(self, values: np.ndarray, out: np.ndarray) -> None:
        """Quantise `values` (the buffers' shape, or their first rows) into `out` (its shape)."""
        n = len(values)
        v, half = self._v[:n], self._half[:n]
        np.divide(values, self._scale, out=v, dtype=np.float64)
        np.copysign(0.5, v, out=half)
        np.add(v, half, out=v)
        np.trunc(v, out=v)                                  # round half away from zero
        np.clip(v, self._lo, self._hi, out=v)
        np.add(v, self._zero_point, out=v)
        np.copyto(out, v, casting="unsafe")


class WindowQuantizer:
    """A head's quantised input window over a stream of float frames, each frame quantised
    once: the window moves by one or two frames per inference, so those are quantised and
    the rest is shifted (the same values as quantising the whole window every time)."""

    def __init__(self, shape: tuple[int, ...], scale: float, zero_point: int,
                 dtype: Union[type, np.dtype] = np.int8) -> None:
        """`shape`: the model input, [1, frames, channels] (or [frames, channels])."""
        frames, channels = int(shape[-2]), int(shape[-1])
        self._rows = FloatQuantizer((frames, channels), scale, zero_point, dtype)
        self._window = np.zeros((frames, channels), dtype=dtype)
        self.input = self._window.reshape(shape)     # a view: what the model is given
        self._primed = False

    def reset(self) -> None:
        """The next update quantises the whole window."""
        self._primed = False

    def update(self, frames: np.ndarray, new: int) -> np.ndarray:
        """The model input for the float window `frames`, of which the last `new` frames
        were not in it at the previous update (any number; more than the window is all;
        the first update after creation or `reset` quantises all)."""
        q = self._window
        n = min(max(new, 0), len(q)) if self._primed else len(q)
        self._primed = True
        if n:
            if n < len(q):
                q[:-n] = q[n:]
            self._rows.into(frames[len(frames) - n:], q[len(q) - n:])
        return self.input
