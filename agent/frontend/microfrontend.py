"""The MLTK microfrontend (TFLM's AudioFeatureGenerator) in numpy, bit for bit.

The TFLite-Micro microfrontend is integer fixed-point end to end, so matching MLTK bit for
bit means re-doing its exact integer arithmetic, not an equivalent float computation:

  [DC notch] -> Hann window (Q12) -> per-frame block scaling -> kissfft real FFT in 16-bit
  fixed point -> energy -> mel filterbank (Q12) -> rounded integer sqrt -> noise reduction
  -> [PCAN gain control] -> fixed-point log -> uint16

Each stage lives in its own module (framing, fft, filterbank, noise, log); this one builds
their tables from the settings and runs them, streaming (`MicroFrontend`) or over a batch of
clips (`micro_features_batch`). Everything without frame-to-frame state is vectorised over
all complete frames (and clips); the recursive stages loop in time, vectorised over channels.
This numpy code is the specification of the C implementation (`native.py`).

`fe.activity_detection_*` are accepted but have no effect: in MLTK they only drive an activity
flag and never change the features. `fe.fft_length`, when set, must be the microfrontend's own
FFT size (the next power of two of the window), which is what MLTK computes with.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from keywire.protocol.errors import ParamsError
from keywire.protocol.frontend_settings import FrontendSettings
from .fft import FftPlan, SplitBins, fft_plan, next_pow2, spectrum_energy, split_bins
from .filterbank import FILTERBANK_BITS, Filterbank, build_filterbank, round_sqrt
from .framing import (WINDOW_BITS, FrameBuffer, dc_notch, dc_notch_batch, dc_notch_coefficient,
                      frames_of, hann_q12)
from .log import log_scale
from .noise import PCAN_SNR_BITS, NoiseTables, noise_tables, reduce_noise
from .quantize import dynamic_scale_range

_BLOCK_FRAMES = 256   # frames per vectorised block: big enough to amortise numpy calls, cache-sized
_MAX_BATCH = 256      # clips per internal step of `micro_features_batch`


def validate_micro(s: FrontendSettings) -> None:
    """Raise `ParamsError` naming the first setting the microfrontend cannot run with."""
    if s.step_samples > s.window_samples:
        raise ParamsError(f"fe.window_step_ms ({s.window_step_ms}) is longer than fe.window_size_ms "
                          f"({s.window_size_ms})")
    if s.window_samples < 8:
        raise ParamsError(f"fe.window_size_ms {s.window_size_ms} gives a {s.window_samples}-sample window; "
                          f"the microfrontend needs at least 8")
    if s.window_samples > 32768:
        raise ParamsError(f"fe.window_size_ms {s.window_size_ms} gives a window over 32768 samples")
    n = next_pow2(s.window_samples)
    if s.fft_length and int(s.fft_length) != n:
        raise ParamsError(f"fe.fft_length {s.fft_length} is not the microfrontend's FFT size {n} "
                          f"(the next power of two of the {s.window_samples}-sample window)")
    if s.pcan_enable and not s.noise_reduction_enable:
        raise ParamsError("fe.pcan_enable needs fe.noise_reduction_enable (PCAN uses its noise estimate)")
    if not 0 <= s.noise_reduction_smoothing_bits <= 16:
        raise ParamsError(f"fe.noise_reduction_smoothing_bits must be 0..16, got {s.noise_reduction_smoothing_bits}")
    for name in ("noise_reduction_even_smoothing", "noise_reduction_odd_smoothing",
                 "noise_reduction_min_signal_remaining"):
        v = getattr(s, name)
        if not 0.0 <= v <= 1.0:
            raise ParamsError(f"fe.{name} must be within 0..1, got {v}")
    if not 0 <= s.log_scale_shift <= 16:
        raise ParamsError(f"fe.log_scale_shift must be 0..16, got {s.log_scale_shift}")
    if s.pcan_enable:
        if not 0 < s.pcan_gain_bits <= 31:
            raise ParamsError(f"fe.pcan_gain_bits must be 1..31, got {s.pcan_gain_bits}")
        if s.pcan_offset <= 0:
            raise ParamsError(f"fe.pcan_offset must be positive, got {s.pcan_offset}")
        if s.pcan_gain_bits - _correction_bits(n) - PCAN_SNR_BITS < 0:
            raise ParamsError(f"fe.pcan_gain_bits {s.pcan_gain_bits} is too small for a {n}-point FFT")
    if not -1.0 < s.dc_notch_filter_coefficient < 1.0:
        raise ParamsError(f"fe.dc_notch_filter_coefficient must be within (-1, 1), "
                          f"got {s.dc_notch_filter_coefficient}")
    if s.quantize_dynamic_scale_enable and dynamic_scale_range(s) <= 0:
        raise ParamsError(f"fe.quantize_dynamic_scale_range_db {s.quantize_dynamic_scale_range_db} "
                          f"gives an empty int8 range")


def _correction_bits(fft_size: int) -> int:
    """MostSignificantBit32(fft_size) - 1 - filterbank bits / 2: the scale the log undoes."""
    return int(fft_size).bit_length() - 1 - FILTERBANK_BITS // 2


@dataclass(frozen=True)
class MicroTables:
    """Everything the microfrontend precomputes from its settings."""

    size: int
    step: int
    fft_size: int
    n_channels: int
    window: np.ndarray          # int32 Q12 Hann coefficients
    plan: FftPlan
    split: SplitBins            # the filterbank's bins in the FFT's output
    filterbank: Filterbank
    noise: NoiseTables
    log_enable: bool
    log_shift: int
    correction_bits: int
    dc_enable: bool
    dc_coef: int


@lru_cache(maxsize=16)
def micro_tables(s: FrontendSettings) -> MicroTables:
    s.validate()
    validate_micro(s)
    n = next_pow2(s.window_samples)
    fb = build_filterbank(s, n // 2 + 1)
    plan = fft_plan(n)
    correction = _correction_bits(n)
    return MicroTables(size=s.window_samples, step=s.step_samples, fft_size=n,
                       n_channels=s.filterbank_n_channels, window=hann_q12(s.window_samples), plan=plan,
                       split=split_bins(plan, fb.start, fb.end), filterbank=fb,
                       noise=noise_tables(s, correction), log_enable=bool(s.log_scale_enable),
                       log_shift=int(s.log_scale_shift), correction_bits=correction,
                       dc_enable=bool(s.dc_notch_filter_enable),
                       dc_coef=dc_notch_coefficient(s.dc_notch_filter_coefficient))


def _windowed_spectrum(frames: np.ndarray, t: MicroTables) -> np.ndarray:
    """Window -> block-scaled fixed-point FFT -> filterbank -> rounded sqrt, unscaled:
    int16 frames [..., size] -> uint32 values as int64 [..., channels]."""
    lead = frames.shape[:-1]
    flat = frames.reshape(-1, t.size)
    if flat.shape[0] <= _BLOCK_FRAMES:
        return _spectrum_block(flat, t).reshape(lead + (t.n_channels,))
    out = np.empty((flat.shape[0], t.n_channels), dtype=np.int64)
    for i in range(0, flat.shape[0], _BLOCK_FRAMES):
        out[i:i + _BLOCK_FRAMES] = _spectrum_block(flat[i:i + _BLOCK_FRAMES], t)
    return out.reshape(lead + (t.n_channels,))


def _spectrum_block(frames: np.ndarray, t: MicroTables) -> np.ndarray:
    """One block of frames [b, size]: Q12 window, per-frame shift so the peak uses the full int16
    range (FFT precision), fixed-point FFT, energy, filterbank, rounded sqrt, shift undone."""
    x = frames.astype(np.int32)
    b = x.shape[0]
    w = (x * t.window) >> WINDOW_BITS           # coefficients <= 4096: always inside int16, no wrap
    a = np.abs(w)
    a[a > 32767] = 0                                                    # int16 abs(-32768) wraps negative
    max_abs = a.max(axis=1) if b else np.zeros(0, np.int32)
    shift = 15 - np.frexp(max_abs.astype(np.float64))[1]               # 15 - MostSignificantBit32
    fft_in = np.zeros((b, t.fft_size), dtype=np.float64)
    fft_in[:, :t.size] = ((w << shift[:, None]) << 16) >> 16            # (int16)((uint16)w << shift)
    energy = spectrum_energy(fft_in, t.plan, t.split)
    work = t.filterbank.accumulate(energy)
    out = np.floor(round_sqrt(work) * np.exp2(-shift.astype(np.float64))[:, None])
    return out.astype(np.int64)


def _frames_to_features(frames: np.ndarray, estimate: np.ndarray, t: MicroTables) -> np.ndarray:
    """int16 frames [..., size] -> uint16 features [..., channels]; `estimate` updated in place."""
    sig = reduce_noise(_windowed_spectrum(frames, t), estimate, t.noise)
    return log_scale(sig, t.log_enable, t.log_shift, t.correction_bits)


class MicroFrontend:
    """The numpy microfrontend over one stream: DC notch, leftover samples and noise estimate
    carry over between `process` calls until `reset()`."""

    def __init__(self, settings: FrontendSettings) -> None:
        self._t = micro_tables(settings)
        self._framing = FrameBuffer(self._t.size, self._t.step)
        self.reset()

    def reset(self) -> None:
        self._framing.reset()
        self._dc_in = 0
        self._dc_out = 0
        self._estimate = np.zeros(self._t.n_channels, dtype=np.int64)

    def process(self, x: np.ndarray) -> np.ndarray:
        """int16 samples -> uint16 features [n_new_frames, channels]."""
        t = self._t
        if t.dc_enable and len(x):
            x, self._dc_in, self._dc_out = dc_notch(x, t.dc_coef, self._dc_in, self._dc_out)
        frames = self._framing.push(x)
        if len(frames) == 0:
            return np.zeros((0, t.n_channels), dtype=np.uint16)
        return _frames_to_features(frames, self._estimate, t)


def micro_features_batch(clips: np.ndarray, settings: FrontendSettings) -> np.ndarray:
    """Features of equal-length int16 clips [b, samples], each from a fresh state, vectorised
    over clips: uint16 [b, frames, channels]."""
    t = micro_tables(settings)
    if clips.shape[0] > _MAX_BATCH:
        return np.concatenate([micro_features_batch(clips[i:i + _MAX_BATCH], settings)
                               for i in range(0, clips.shape[0], _MAX_BATCH)])
    b = clips.shape[0]
    frames = frames_of(clips, t.size, t.step)
    if frames.shape[1] == 0 or b == 0:
        return np.zeros((b, frames.shape[1], t.n_channels), dtype=np.uint16)
    if t.dc_enable:
        if b >= 64:   # numpy across clips beats the per-clip Python loop for big batches
            clips = dc_notch_batch(clips, t.dc_coef)
        else:
            clips = np.stack([dc_notch(c, t.dc_coef, 0, 0)[0] for c in clips])
        frames = frames_of(clips, t.size, t.step)
    estimate = np.zeros((b, t.n_channels), dtype=np.int64)
    return _frames_to_features(frames, estimate, t)
