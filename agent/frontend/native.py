"""The C/numpy choice for the microfrontend.

`agent/native/frontend.c`, built by `pip install -e .` as `keywire.agent._cfrontend`, redoes
the numpy microfrontend's integer arithmetic frame by frame, about ten times cheaper per
streaming call. The tables stay Python's (`micro_tables`): they are handed to C once at
construction, so there is one source of truth for them; C keeps only the streaming state.
The choice is an argument, never the environment: None = C when built, True = require it,
False = numpy.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

import numpy as np

from keywire.protocol.frontend_settings import FrontendSettings
from .log import LOG_LUT
from .microfrontend import micro_tables

try:  # the same arithmetic compiled (agent/native/frontend.c); numpy is the reference
    from .. import _cfrontend
except ImportError:  # pragma: no cover - depends on the build
    _cfrontend = None


def native_available() -> bool:
    """Whether the compiled frontend (`keywire.agent._cfrontend`) was built and imports."""
    return _cfrontend is not None


def use_native(native: Optional[bool]) -> bool:
    """`native`: None = the C frontend when it is built, True = require it, False = numpy."""
    if native is None:
        return _cfrontend is not None
    if native and _cfrontend is None:
        raise RuntimeError("the compiled frontend keywire.agent._cfrontend is not built "
                           "(pip install -e . builds it; it needs gcc and python3-dev)")
    return bool(native)


@lru_cache(maxsize=16)
def _native_args(s: FrontendSettings) -> dict:
    """The tables as the int32 arrays `_cfrontend.Frontend` copies once at construction."""
    t = micro_tables(s)

    def i32(a) -> bytes:
        return np.ascontiguousarray(np.asarray(a).real.astype(np.int32) if np.iscomplexobj(a)
                                    else np.asarray(a, dtype=np.int64).astype(np.int32)).tobytes()

    def cplx(a) -> bytes:   # complex (exact integers) -> interleaved (re, im) int32
        a = np.asarray(a)
        return np.stack([a.real, a.imag], axis=-1).astype(np.int32).tobytes()

    plan, fb, nr, split = t.plan, t.filterbank, t.noise, t.split
    widths = np.diff(np.append(fb.range_starts, fb.end - fb.start))
    return dict(
        size=t.size, step=t.step, fft_size=t.fft_size, n_channels=t.n_channels,
        window=i32(t.window), perm=i32(plan.perm),
        stages=i32([(p, m, fstride) for p, m, fstride, _ in plan.stages]),
        twiddles=b"".join(cplx(tw) for _, _, _, tw in plan.stages),
        split_k=i32(split.k), split_first=i32(split.first), split_tw=cplx(split.twiddle),
        weights=i32(fb.weights), unweights=i32(fb.unweights),
        bin_range=i32(np.repeat(fb.nonempty, widths)),
        nr_enable=nr.nr_enable, smoothing_bits=nr.smoothing_bits, smoothing=i32(nr.smoothing),
        min_signal_remaining=nr.min_signal_remaining, pcan_enable=nr.pcan_enable,
        gain_lut=i32(nr.gain_lut), snr_shift=nr.snr_shift, log_enable=t.log_enable,
        log_shift=t.log_shift, correction_bits=t.correction_bits, log_lut=i32(LOG_LUT),
        dc_enable=t.dc_enable, dc_coef=t.dc_coef)


def native_frontend(s: FrontendSettings) -> Any:
    """A fresh C microfrontend state (`process(int16, out uint16)`, `frames_for(n)`,
    `process_batch(clips, b, out)`, `reset()`)."""
    return _cfrontend.Frontend(**_native_args(s))
