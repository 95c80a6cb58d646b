"""Streaming audio frontend: MLTK's AudioFeatureGenerator (the TFLM microfrontend) in numpy.

The TFLite-Micro microfrontend is integer fixed-point end to end, so matching MLTK bit for
bit means re-doing its exact integer arithmetic, not an equivalent float computation:

  [DC notch] -> Hann window (Q12, single-precision cosf) -> per-frame block scaling ->
  kissfft real FFT in 16-bit fixed point -> energy -> mel filterbank (Q12 weights/unweights)
  -> rounded integer sqrt -> noise reduction -> [PCAN gain control] -> fixed-point log -> uint16

Everything that does not carry state from frame to frame is vectorised over all complete
frames in a chunk (and over clips in `compute_features_batch`); the recursive stages
(DC notch per sample, noise reduction/PCAN per frame) loop in time but are vectorised over
channels. Tables (window, twiddles, filterbank, gain and log LUTs) are built once per settings.

This numpy code is the specification. `agent/native/frontend.c` (the extension
`keywire.agent._cfrontend`, built by `pip install -e .`) redoes the same integer arithmetic
frame by frame in C from the same tables, about ten times cheaper per streaming call;
`Frontend(settings, native=None)` uses it when it is built and this code otherwise.

`fe.frontend_type == "mfcc"` selects the float MFCC frontend in `mfcc.py` instead.
`fe.activity_detection_*` are accepted but have no effect: in MLTK they only drive an activity
flag and never change the features. `fe.fft_length`, when set, must be the microfrontend's own
FFT size (the next power of two of the window), which is what MLTK computes with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union

import numpy as np

from .errors import AudioError, ParamsError
from .settings import FrontendSettings

try:  # the same arithmetic compiled (agent/native/frontend.c); numpy below is the reference
    from . import _cfrontend
except ImportError:  # pragma: no cover - depends on the build
    _cfrontend = None

__all__ = [
    "Frontend",
    "compute_features",
    "compute_features_batch",
    "to_model_input",
    "to_model_input_mfcc",
    "dynamic_scale_range",
    "validate_settings",
    "native_available",
]

# Fixed-point constants of the TFLM microfrontend.
_WINDOW_BITS = 12          # kFrontendWindowBits
_FILTERBANK_BITS = 12      # kFilterbankBits
_NOISE_REDUCTION_BITS = 14  # kNoiseReductionBits
_PCAN_SNR_BITS = 12        # kPcanSnrBits
_PCAN_OUTPUT_BITS = 6      # kPcanOutputBits
_WDF_BITS = 32             # kWideDynamicFunctionBits
_LOG_SCALE_LOG2 = 16       # kLogScaleLog2
_LOG_SEGMENTS_LOG2 = 7     # kLogSegmentsLog2
_LOG_COEFF = 45426         # kLogCoeff: ln(2) in Q16
_U32 = 0xFFFFFFFF

# kLogLut: 129 (+1 padding) correction values of log2(1+x) - x in Q16 over 128 segments.
_LOG_LUT = np.array([
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797,
    2944, 3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549,
    4633, 4714, 4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444,
    5477, 5507, 5533, 5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626,
    5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203,
    5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264,
    4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875,
    2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094,
    963, 830, 695, 559, 421, 282, 142, 0, 0], dtype=np.int64)

# ln(10)/20, as MLTK writes it for the dynamic int8 range.
_LN10_DIV_20 = 0.11512925465


# ============================================================================ validation
def validate_settings(s: FrontendSettings) -> None:
    """Raise `ParamsError` naming the first setting the frontend cannot run with."""
    s.validate()
    if s.frontend_type == "mfcc":
        if not 1 <= s.mfcc_n_coefficients <= s.filterbank_n_channels:
            raise ParamsError(
                f"fe.mfcc_n_coefficients must be 1..fe.filterbank_n_channels "
                f"({s.filterbank_n_channels}), got {s.mfcc_n_coefficients}")
        return
    if s.step_samples > s.window_samples:
        raise ParamsError(f"fe.window_step_ms ({s.window_step_ms}) is longer than fe.window_size_ms "
                          f"({s.window_size_ms})")
    if s.window_samples < 8:
        raise ParamsError(f"fe.window_size_ms {s.window_size_ms} gives a {s.window_samples}-sample window; "
                          f"the microfrontend needs at least 8")
    if s.window_samples > 32768:
        raise ParamsError(f"fe.window_size_ms {s.window_size_ms} gives a window over 32768 samples")
    n = _next_pow2(s.window_samples)
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
        if s.pcan_gain_bits - (_msb(n) - 1 - _FILTERBANK_BITS // 2) - _PCAN_SNR_BITS < 0:
            raise ParamsError(f"fe.pcan_gain_bits {s.pcan_gain_bits} is too small for a {n}-point FFT")
    if not -1.0 < s.dc_notch_filter_coefficient < 1.0:
        raise ParamsError(f"fe.dc_notch_filter_coefficient must be within (-1, 1), "
                          f"got {s.dc_notch_filter_coefficient}")
    if s.quantize_dynamic_scale_enable and dynamic_scale_range(s) <= 0:
        raise ParamsError(f"fe.quantize_dynamic_scale_range_db {s.quantize_dynamic_scale_range_db} "
                          f"gives an empty int8 range")


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def _msb(n: int) -> int:
    """MostSignificantBit32: number of bits needed for n (0 for 0)."""
    return int(n).bit_length()


# ============================================================================ tables
@dataclass(frozen=True)
class _FftPlan:
    """kissfft (FIXED_POINT=16) real FFT of size `n`: the complex FFT of n/2 points in
    kissfft's radix order, its twiddles, and the real-split twiddles. Twiddles are complex128
    holding the exact Q15 integers."""

    n: int
    perm: np.ndarray                    # input pair index for each position before the stages
    stages: tuple                       # (radix, m, fstride, twiddles [p, m] complex) deepest first
    super_tw: np.ndarray                # split twiddles for k = 1..ncfft/2 (complex)


def _kiss_factors(n: int) -> list[tuple[int, int]]:
    """kf_factor: radix 4 first, then 2, then odd numbers; (p, m) per stage."""
    out = []
    p = 4
    floor_sqrt = math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = 2 if p == 4 else (3 if p == 2 else p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        out.append((p, n))
        if n <= 1:
            return out


def _twiddle(phase: np.ndarray) -> np.ndarray:
    """kf_cexp in fixed point: floor(0.5 + 32767 * cos/sin(phase)) as exact complex128."""
    return np.floor(0.5 + 32767.0 * np.cos(phase)) + 1j * np.floor(0.5 + 32767.0 * np.sin(phase))


@lru_cache(maxsize=8)
def _fft_plan(n: int) -> _FftPlan:
    ncfft = n // 2
    factors = _kiss_factors(ncfft)
    if any(p not in (2, 4) for p, _ in factors):
        raise ParamsError(f"fe.window_size_ms gives FFT size {n}, not a power of two")
    tw = _twiddle(-2.0 * math.pi * np.arange(ncfft) / ncfft)

    # Input order after kf_work's recursive decimation (positions filled at the leaves).
    perm = np.zeros(ncfft, dtype=np.int64)

    def fill(out_off: int, f_idx: int, fstride: int, level: int) -> None:
        p, m = factors[level]
        if m == 1:
            for q in range(p):
                perm[out_off + q] = f_idx + q * fstride
        else:
            for q in range(p):
                fill(out_off + q * m, f_idx + q * fstride, fstride * p, level + 1)

    fill(0, 0, 1, 0)

    stages = []
    fstride = 1
    for p, m in factors:
        k = np.arange(m)
        idx = (np.arange(p)[:, None] * k[None, :] * fstride) % ncfft   # [p, m] twiddle index q*k*fstride
        stages.append((p, m, fstride, tw[idx]))
        fstride *= p
    stages.reverse()  # butterflies run from the deepest recursion level up

    k = np.arange(1, ncfft // 2 + 1)
    return _FftPlan(n=n, perm=perm, stages=tuple(stages), super_tw=_twiddle(-math.pi * (k / ncfft + 0.5)))


@dataclass(frozen=True)
class _Tables:
    """Everything the microfrontend precomputes from its settings."""

    size: int
    step: int
    fft_size: int
    window: np.ndarray          # int32 Q12 Hann coefficients
    plan: _FftPlan
    start: int                  # first FFT bin used by the filterbank
    end: int                    # one past the last
    filterbank: _Filterbank
    n_channels: int
    nr_enable: bool
    smoothing_bits: int
    smoothing: np.ndarray       # uint64 per channel (even/odd)
    min_signal_remaining: int
    pcan_enable: bool
    gain_lut: np.ndarray        # int64 [125]
    snr_shift: int
    log_enable: bool
    log_shift: int
    correction_bits: int
    dc_enable: bool
    dc_coef: int
    split: tuple                # _split_bins(plan, start, end)


def _f32(x: float) -> np.float32:
    return np.float32(x)


def _hann_q12(size: int) -> np.ndarray:
    """MLTK's window: float arg = 2*pi/size; v = (float)(0.5 - 0.5*cosf(arg*(i+0.5)));
    coefficient = floor(v * 4096 + 0.5). cosf is taken as the correctly rounded float cos."""
    arg = np.float64(_f32(math.pi * 2.0 / float(_f32(size))))
    x = (arg * (np.arange(size, dtype=np.float64) + 0.5)).astype(np.float32)
    cosf = np.cos(x.astype(np.float64)).astype(np.float32)
    v = (0.5 - 0.5 * cosf.astype(np.float64)).astype(np.float32)
    v = v * np.float32(1 << _WINDOW_BITS)
    return np.floor(v.astype(np.float64) + 0.5).astype(np.int32)


def _freq_to_mel(freq: np.ndarray) -> np.ndarray:
    """FreqToMel as the microfrontend computes it: 1127 * log1p(f / 700) in double, stored as float."""
    return (1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)).astype(np.float32)


@dataclass(frozen=True)
class _Filterbank:
    """Q12 weights/unweights per FFT bin and the bins' channel ranges."""

    start: int
    end: int
    n_channels: int
    weights: np.ndarray        # float64 [end-start]
    unweights: np.ndarray      # float64 [end-start]
    range_starts: np.ndarray   # offsets (from start) of the non-empty ranges
    nonempty: np.ndarray       # which of the nch+1 ranges are non-empty

    def accumulate(self, energy: np.ndarray) -> np.ndarray:
        """FilterbankAccumulateChannels on float-held energies [b, end-start] -> [b, channels]
        (exact: every partial sum stays below 2^53)."""
        b = energy.shape[0]
        w = np.zeros((b, self.n_channels + 1))
        u = np.zeros((b, self.n_channels + 1))
        w[:, self.nonempty] = np.add.reduceat(energy * self.weights, self.range_starts, axis=1)
        u[:, self.nonempty] = np.add.reduceat(energy * self.unweights, self.range_starts, axis=1)
        return w[:, 1:] + u[:, :-1]


def _filterbank(s: FrontendSettings, spectrum_size: int) -> "_Filterbank":
    """Q12 triangular mel weights exactly as FilterbankPopulateState builds them."""
    nch = s.filterbank_n_channels
    lower = float(_f32(s.filterbank_lower_band_limit))
    upper = float(_f32(s.filterbank_upper_band_limit))
    mel_low = _freq_to_mel(np.float32(lower))
    mel_hi = _freq_to_mel(np.float32(upper))
    mel_span = np.float32(mel_hi - mel_low)
    mel_spacing = np.float32(mel_span / np.float32(nch + 1))
    centers = np.array([np.float32(mel_low + np.float32(mel_spacing * np.float32(i + 1)))
                        for i in range(nch + 1)], dtype=np.float32)
    hz_per_sbin = np.float32(0.5 * s.sample_rate_hz / (float(np.float32(spectrum_size)) - 1.0))
    start = int(1.5 + float(np.float32(np.float32(lower) / hz_per_sbin)))   # float / float in C

    def mel_of_bin(i: int) -> np.float32:
        return _freq_to_mel(np.float32(np.float64(i) * np.float64(hz_per_sbin)))

    chan_start = []
    chan_width = []
    f = start
    for chan in range(nch + 1):
        g = f
        while mel_of_bin(g) <= centers[chan]:
            g += 1
            if g > spectrum_size + 1:
                raise ParamsError("fe.filterbank_upper_band_limit leaves a filterbank channel "
                                  "beyond the spectrum")
        chan_start.append(f)
        chan_width.append(g - f)
        f = g
    end = 0
    weights = np.zeros((nch + 1, spectrum_size + 2), dtype=np.int64)
    unweights = np.zeros_like(weights)
    for chan in range(nch + 1):
        denom = mel_low if chan == 0 else centers[chan - 1]
        fr = chan_start[chan]
        for _ in range(chan_width[chan]):
            w = np.float32(np.float32(centers[chan] - mel_of_bin(fr)) / np.float32(centers[chan] - denom))
            weights[chan, fr] = math.floor(float(w) * (1 << _FILTERBANK_BITS) + 0.5)
            unweights[chan, fr] = math.floor((1.0 - float(w)) * (1 << _FILTERBANK_BITS) + 0.5)
            fr += 1
        end = max(end, fr)
    if end >= spectrum_size:
        raise ParamsError(f"fe.filterbank_upper_band_limit {s.filterbank_upper_band_limit} reaches beyond "
                          f"the {spectrum_size}-bin spectrum")
    # int16 storage in C
    weights = ((weights + 32768) & 0xFFFF) - 32768
    unweights = ((unweights + 32768) & 0xFFFF) - 32768
    # Bins start..end-1 fall into nch+1 consecutive ranges; channel c's output sums the weights
    # of range c+1 and the unweights of range c (the C code's work[c+1]).
    chan_of_bin = np.repeat(np.arange(nch + 1), chan_width)
    bins = np.arange(start, end)
    nonempty = np.flatnonzero(np.asarray(chan_width) > 0)
    return _Filterbank(
        start=start, end=end, n_channels=nch,
        weights=weights[chan_of_bin, bins].astype(np.float64),
        unweights=unweights[chan_of_bin, bins].astype(np.float64),
        range_starts=np.asarray(chan_start)[nonempty] - start, nonempty=nonempty)


def _pcan_lut(s: FrontendSettings, input_bits: int) -> np.ndarray:
    """PcanGainControlPopulateState's wide-dynamic-function LUT (float32 arithmetic)."""
    strength = _f32(s.pcan_strength)
    offset = _f32(s.pcan_offset)
    gain_scale = _f32(float(1 << s.pcan_gain_bits))
    div = _f32(float(1 << input_bits)) if input_bits >= 0 else None

    def gain(x: int) -> int:
        xf = _f32(np.float32(x) / div) if div is not None else _f32(np.float32(x) * _f32(float(1 << -input_bits)))
        base = np.float32(xf + offset)
        p = np.float32(math.pow(float(base), -float(strength)))
        g = np.float32(gain_scale * p)
        if g > 32767:
            return 32767
        return int(np.float32(g + np.float32(0.5)))

    def i16(v: int) -> int:
        return ((v + 32768) & 0xFFFF) - 32768

    lut = np.zeros(4 * _WDF_BITS - 3, dtype=np.int64)
    lut[0] = gain(0)
    lut[1] = gain(1)
    for interval in range(2, _WDF_BITS + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == _WDF_BITS else 2 * x0
        y0, y1, y2 = gain(x0), gain(x1), gain(x2)
        diff1 = y1 - y0
        diff2 = y2 - y0
        a1 = 4 * diff1 - diff2
        a2 = diff2 - a1
        base = 4 * interval - 6
        lut[base] = i16(y0)
        lut[base + 1] = i16(a1)
        lut[base + 2] = i16(a2)
    return lut


@lru_cache(maxsize=16)
def _tables(s: FrontendSettings) -> _Tables:
    validate_settings(s)
    size, step = s.window_samples, s.step_samples
    n = _next_pow2(size)
    fb = _filterbank(s, n // 2 + 1)
    start, end = fb.start, fb.end
    nch = s.filterbank_n_channels
    q = 1 << _NOISE_REDUCTION_BITS
    even = int(_f32(s.noise_reduction_even_smoothing) * _f32(q))
    odd = int(_f32(s.noise_reduction_odd_smoothing) * _f32(q))
    msr = int(_f32(s.noise_reduction_min_signal_remaining) * _f32(q))
    smoothing = np.where(np.arange(nch) % 2 == 0, even, odd).astype(np.uint64)
    correction_bits = _msb(n) - 1 - _FILTERBANK_BITS // 2
    if s.pcan_enable:
        lut = _pcan_lut(s, s.noise_reduction_smoothing_bits - correction_bits)
        snr_shift = s.pcan_gain_bits - correction_bits - _PCAN_SNR_BITS
    else:
        lut, snr_shift = np.zeros(4 * _WDF_BITS - 3, dtype=np.int64), 0
    dc_coef = int(_f32(s.dc_notch_filter_coefficient) * _f32(1 << 15))
    dc_coef = ((dc_coef + 32768) & 0xFFFF) - 32768
    plan = _fft_plan(n)
    return _Tables(size=size, step=step, fft_size=n, window=_hann_q12(size), plan=plan,
                   split=_split_bins(plan, start, end),
                   start=start, end=end, filterbank=fb, n_channels=nch,
                   nr_enable=bool(s.noise_reduction_enable),
                   smoothing_bits=int(s.noise_reduction_smoothing_bits), smoothing=smoothing,
                   min_signal_remaining=msr, pcan_enable=bool(s.pcan_enable), gain_lut=lut,
                   snr_shift=snr_shift, log_enable=bool(s.log_scale_enable),
                   log_shift=int(s.log_scale_shift), correction_bits=correction_bits,
                   dc_enable=bool(s.dc_notch_filter_enable), dc_coef=dc_coef)


# ============================================================================ fixed-point FFT
# The integer arithmetic runs on float64 (and complex128) arrays: every intermediate is an
# integer below 2^53, so +, -, * and multiplication by powers of two are exact, and C's
# `(x + 2^14) >> 15` becomes floor(x * 2^-15 + 0.5). This halves the numpy calls (real and
# imaginary parts together) and lets BLAS do the exact filterbank sums.
_Q15 = 1.0 / 32768.0


def _wrap16_inplace(v: np.ndarray) -> None:
    """int16 store (two's complement wrap) of float-held integers; a no-op unless out of range."""
    if v.size and (v.max() > 32767.0 or v.min() < -32768.0):
        v -= 65536.0 * np.floor((v + 32768.0) * (1.0 / 65536.0))


def _round_q15_inplace(v: np.ndarray, factor: float = _Q15) -> None:
    """v = floor(v * factor + 0.5) in place (sround / C_FIXDIV with a power-of-two factor)."""
    np.multiply(v, factor, out=v)
    np.add(v, 0.5, out=v)
    np.floor(v, out=v)


def _fvec(z: np.ndarray) -> np.ndarray:
    """Float view of a complex array (real/imag interleaved)."""
    return z.view(np.float64)


def _complex_fft_q15(z: np.ndarray, plan: _FftPlan) -> np.ndarray:
    """kiss_fft (forward, FIXED_POINT=16) of int16-valued complex rows z [b, ncfft], in place order."""
    b = z.shape[0]
    for p, m, fstride, tw in plan.stages:
        z = z.reshape(b, fstride, p, m)
        # C_FIXDIV(x, p): x * (32767 / p) rounded back to Q15 (p is 2 or 4: an exact float factor)
        _round_q15_inplace(_fvec(z), (32767 // p) * _Q15)
        if m > 1:  # with m == 1 every twiddle is (32767, 0), an exact identity for |x| <= 16384
            rot = z[:, :, 1:]
            rot *= tw[1:]                  # C_MUL by the twiddles (row 0 multiplies by 1)
            _round_q15_inplace(_fvec(rot))
        # Magnitudes: after the divide |x| <= 32767/p, a twiddle product <= sqrt(2) * 32767/p and the
        # first sums stay inside int16; only the stage outputs can overflow, so only they are wrapped.
        out = np.empty_like(z)
        if p == 4:
            s5 = z[:, :, 0] - z[:, :, 2]
            f0 = z[:, :, 0] + z[:, :, 2]
            s3 = z[:, :, 1] + z[:, :, 3]
            s4 = z[:, :, 1] - z[:, :, 3]
            np.add(f0, s3, out=out[:, :, 0])
            np.subtract(f0, s3, out=out[:, :, 2])
            s4 *= 1j
            np.subtract(s5, s4, out=out[:, :, 1])     # (s5.r + s4.i, s5.i - s4.r)
            np.add(s5, s4, out=out[:, :, 3])          # (s5.r - s4.i, s5.i + s4.r)
        else:
            np.add(z[:, :, 0], z[:, :, 1], out=out[:, :, 0])
            np.subtract(z[:, :, 0], z[:, :, 1], out=out[:, :, 1])
        if m > 1:  # deepest stage: +-sums of p unrotated values <= 32767/p, cannot overflow
            _wrap16_inplace(_fvec(out))
        z = out
    return z.reshape(b, -1)


def _split_bins(plan: _FftPlan, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For output bins start..end-1 of kiss_fftr: the k of the split loop that writes each bin and
    whether it is the `freqdata[k]` (True) or the `freqdata[ncfft-k]` write (which wins at ncfft/2)."""
    ncfft = plan.n // 2
    bins = np.arange(start, end)
    first = bins < ncfft // 2
    k = np.where(first, bins, ncfft - bins)
    if np.any((k < 1) | (k > ncfft // 2)):
        raise ParamsError("fe.filterbank_* bands fall outside the FFT's bins")
    return k, first, ncfft - k, plan.super_tw[k - 1]


def _spectrum_energy(fft_in: np.ndarray, t: "_Tables") -> np.ndarray:
    """kiss_fftr (FIXED_POINT=16) of int16-valued rows, then |X|^2 of the filterbank's bins:
    float64 [b, end-start] (exact uint32 values)."""
    plan = t.plan
    b = fft_in.shape[0]
    pairs = fft_in.reshape(b, plan.n // 2, 2)[:, plan.perm]          # (x[2i], x[2i+1]) in kf_work order
    z = _complex_fft_q15(np.ascontiguousarray(pairs).view(np.complex128).reshape(b, -1), plan)
    k, first, nk, sup = t.split
    fpk = np.take(z, k, axis=1)
    fpnk = np.conj(np.take(z, nk, axis=1))
    _wrap16_inplace(_fvec(fpnk))                                       # -(-32768) stays -32768
    _round_q15_inplace(_fvec(fpk), 16383 * _Q15)                       # C_FIXDIV(., 2)
    _round_q15_inplace(_fvec(fpnk), 16383 * _Q15)
    f1k = fpk + fpnk
    f2k = fpk - fpnk
    _wrap16_inplace(_fvec(f1k))
    _wrap16_inplace(_fvec(f2k))
    f2k *= sup                                                         # C_MUL by the split twiddle
    _round_q15_inplace(_fvec(f2k))
    _wrap16_inplace(_fvec(f2k))
    out = np.where(first, f1k + f2k, np.conj(f1k - f2k))               # HALF_OF(...) below
    v = _fvec(out)
    np.multiply(v, 0.5, out=v)
    np.floor(v, out=v)                 # half of a sum of two int16 values: always inside int16
    re, im = out.real, out.imag
    return re * re + im * im


def _round_sqrt(n: np.ndarray) -> np.ndarray:
    """Sqrt64/Sqrt32 on float-held integers < 2^53: square root rounded to nearest
    (Sqrt32 never rounds 0xFFFF up)."""
    r = np.floor(np.sqrt(n))
    r -= (r * r > n)
    r += ((r + 1.0) * (r + 1.0) <= n)
    inc = (n - r * r) > r
    inc &= ~((r == 65535.0) & (n < 4294967296.0))
    return r + inc


_BLOCK_FRAMES = 256   # frames per vectorised block: big enough to amortise numpy calls, cache-sized


def _windowed_spectrum(frames: np.ndarray, t: "_Tables") -> np.ndarray:
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


def _spectrum_block(frames: np.ndarray, t: "_Tables") -> np.ndarray:
    """One block of frames [b, size]: Q12 window, per-frame shift so the peak uses the full int16
    range (FFT precision), fixed-point FFT, energy, filterbank, rounded sqrt, shift undone."""
    x = frames.astype(np.int32)
    b = x.shape[0]
    w = (x * t.window) >> _WINDOW_BITS          # coefficients <= 4096: always inside int16, no wrap
    a = np.abs(w)
    a[a > 32767] = 0                                                    # int16 abs(-32768) wraps negative
    max_abs = a.max(axis=1) if b else np.zeros(0, np.int32)
    shift = 15 - np.frexp(max_abs.astype(np.float64))[1]               # 15 - MostSignificantBit32
    fft_in = np.zeros((b, t.fft_size), dtype=np.float64)
    fft_in[:, :t.size] = ((w << shift[:, None]) << 16) >> 16            # (int16)((uint16)w << shift)
    energy = _spectrum_energy(fft_in, t)
    work = t.filterbank.accumulate(energy)
    out = np.floor(_round_sqrt(work) * np.exp2(-shift.astype(np.float64))[:, None])
    return out.astype(np.int64)


def _msb_array(x: np.ndarray) -> np.ndarray:
    """MostSignificantBit32 of non-negative int64 values < 2^53."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def _wide_dynamic(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """WideDynamicFunction: piecewise-quadratic gain lookup of the noise estimate."""
    interval = _msb_array(x)
    small = x <= 2
    interval_c = np.maximum(interval, 2)
    base = 4 * interval_c - 6
    left = np.left_shift(x, np.maximum(11 - interval_c, 0))
    right = np.right_shift(x, np.maximum(interval_c - 11, 0))
    frac = np.where(interval_c < 11, left, right) & 0x3FF
    l0, l1, l2 = lut[base], lut[np.minimum(base + 1, len(lut) - 1)], lut[np.minimum(base + 2, len(lut) - 1)]
    result = (l2 * frac) >> 5
    result = result + l1 * 32
    result = result * frac
    result = (result + (1 << 14)) >> 15
    result = result + l0
    result = ((result + 32768) & 0xFFFF) - 32768
    result = np.where(small, lut[np.minimum(x, 2)], result)
    return result & _U32       # int16 -> uint32 conversion


def _pcan_shrink(x: np.ndarray) -> np.ndarray:
    lo = (x * x) >> (2 + 2 * _PCAN_SNR_BITS - _PCAN_OUTPUT_BITS)
    hi = (x >> (_PCAN_SNR_BITS - _PCAN_OUTPUT_BITS)) - (1 << _PCAN_OUTPUT_BITS)
    return np.where(x < (2 << _PCAN_SNR_BITS), lo & _U32, hi & _U32)


_LOG_LUT_STEP = np.diff(_LOG_LUT)        # c1 - c0 per segment


def _log_scale(x: np.ndarray, t: _Tables) -> np.ndarray:
    """LogScaleApply: fixed-point natural log, scaled by 2^shift, saturated to uint16.

    log2(v) = integer part (MSB - 1) + 16-bit fraction corrected by the segment LUT; frexp gives
    both at once: v = m * 2^e with m in [0.5, 1), so the fraction bits are floor((2m - 1) * 2^16)
    (the C code's left shift, or its truncating right shift for v >= 2^17)."""
    if not t.log_enable:
        return np.minimum(x, 0xFFFF).astype(np.uint16)
    if t.correction_bits < 0:
        v = x >> -t.correction_bits
    else:
        v = (x << t.correction_bits) & _U32
    m, e = np.frexp(v.astype(np.float64))
    frac = np.floor(m * 131072.0 - 65536.0).astype(np.int64)              # 0 .. 65535
    seg = frac >> (_LOG_SCALE_LOG2 - _LOG_SEGMENTS_LOG2)
    rel = (_LOG_LUT_STEP[seg] * (frac & ((1 << (_LOG_SCALE_LOG2 - _LOG_SEGMENTS_LOG2)) - 1))) >> _LOG_SCALE_LOG2
    log2 = ((e.astype(np.int64) - 1) << _LOG_SCALE_LOG2) + frac + _LOG_LUT[seg] + rel
    rnd = 1 << (_LOG_SCALE_LOG2 - 1)
    loge = (_LOG_COEFF * log2 + rnd) >> _LOG_SCALE_LOG2                    # < 2^21: no uint32 wrap
    scaled = loge << t.log_shift
    if t.log_shift > 10:
        scaled &= _U32
    scaled = (scaled + rnd) >> _LOG_SCALE_LOG2
    scaled[v <= 1] = 0
    return np.minimum(scaled, 0xFFFF).astype(np.uint16)


# ============================================================================ DC notch
def _wrap16(x: np.ndarray) -> np.ndarray:
    """int16 store (two's complement wrap) of an int32 array."""
    return (x << 16) >> 16


@lru_cache(maxsize=4)
def _dc_feedback(coef: int) -> list:
    """feedback[y] = MLTK's ((coef * y >> 14) + 1) >> 1 for int16 y, as a list laid out so that
    Python's negative indices address it: feedback[y] is right for y in -32768..32767 and, because
    the list has 65536 entries, also for any unwrapped y in -65536..65535 (it then reads the entry
    of int16(y)), which lets the per-sample loop skip the int16 wrap."""
    ys = np.concatenate([np.arange(0, 32768), np.arange(-32768, 0)]).astype(np.int64)
    return ((((coef * ys) >> 14) + 1) >> 1).tolist()


def _dc_notch(x: np.ndarray, coef: int, prev_in: int, prev_out: int) -> tuple[np.ndarray, int, int]:
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
    raw = np.fromiter((y := di + fb[y] for di in _wrap16(d).tolist()), dtype=np.int32, count=len(d))
    out = _wrap16(raw).astype(np.int16)
    return out, int(xi[-1]), int(out[-1])


def _dc_notch_batch(x: np.ndarray, coef: int) -> np.ndarray:
    """The DC notch over many clips at once (fresh state), vectorised over clips."""
    xi = x.astype(np.int32)
    d = np.empty_like(xi)
    d[:, 0] = xi[:, 0]
    d[:, 1:] = xi[:, 1:] - xi[:, :-1]
    d = _wrap16(d)
    out = np.empty_like(d)
    y = np.zeros(x.shape[0], dtype=np.int32)
    for n in range(x.shape[1]):
        y = _wrap16(d[:, n] + ((((coef * y) >> 14) + 1) >> 1))
        out[:, n] = y
    return out.astype(np.int16)


# ============================================================================ recursive stages
def _nr_pcan_log(sig: np.ndarray, estimate: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Noise reduction, PCAN and log over sig [..., frames, ch] (uint32 values in int64).
    Only the noise estimate recursion runs frame by frame (vectorised over channels); the rest
    is vectorised over frames too. `estimate` [..., ch] is updated in place."""
    if t.nr_enable and sig.shape[-2]:
        sb = t.smoothing_bits
        up = (sig << sb) & _U32                                    # signal << smoothing_bits (uint32)
        a = up * t.smoothing.astype(np.int64)
        one_minus = (1 << _NOISE_REDUCTION_BITS) - t.smoothing.astype(np.int64)
        est_all = np.empty_like(sig)
        est = estimate
        for f in range(sig.shape[-2]):
            est = (a[..., f, :] + est * one_minus) >> _NOISE_REDUCTION_BITS
            est_all[..., f, :] = est
        estimate[...] = est
        floor = (sig * t.min_signal_remaining) >> _NOISE_REDUCTION_BITS
        sub = (up - np.minimum(est_all, up)) >> sb
        sig = np.maximum(sub, floor)
        if t.pcan_enable:
            gain = _wide_dynamic(est_all, t.gain_lut)
            snr = ((sig.astype(np.uint64) * gain.astype(np.uint64)) >> np.uint64(t.snr_shift)).astype(np.int64) & _U32
            sig = _pcan_shrink(snr)
    return _log_scale(sig, t), estimate


# ============================================================================ C implementation
def native_available() -> bool:
    """Whether the compiled frontend (`keywire.agent._cfrontend`) was built and imports."""
    return _cfrontend is not None


def _use_native(native: Optional[bool]) -> bool:
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
    t = _tables(s)

    def i32(a) -> bytes:
        return np.ascontiguousarray(np.asarray(a).real.astype(np.int32) if np.iscomplexobj(a)
                                    else np.asarray(a, dtype=np.int64).astype(np.int32)).tobytes()

    def cplx(a) -> bytes:   # complex (exact integers) -> interleaved (re, im) int32
        a = np.asarray(a)
        return np.stack([a.real, a.imag], axis=-1).astype(np.int32).tobytes()

    plan, fb = t.plan, t.filterbank
    widths = np.diff(np.append(fb.range_starts, fb.end - fb.start))
    k, first, _, sup = t.split
    return dict(
        size=t.size, step=t.step, fft_size=t.fft_size, n_channels=t.n_channels,
        window=i32(t.window), perm=i32(plan.perm),
        stages=i32([(p, m, fstride) for p, m, fstride, _ in plan.stages]),
        twiddles=b"".join(cplx(tw) for _, _, _, tw in plan.stages),
        split_k=i32(k), split_first=i32(first), split_tw=cplx(sup),
        weights=i32(fb.weights), unweights=i32(fb.unweights),
        bin_range=i32(np.repeat(fb.nonempty, widths)),
        nr_enable=t.nr_enable, smoothing_bits=t.smoothing_bits, smoothing=i32(t.smoothing),
        min_signal_remaining=t.min_signal_remaining, pcan_enable=t.pcan_enable,
        gain_lut=i32(t.gain_lut), snr_shift=t.snr_shift, log_enable=t.log_enable,
        log_shift=t.log_shift, correction_bits=t.correction_bits, log_lut=i32(_LOG_LUT),
        dc_enable=t.dc_enable, dc_coef=t.dc_coef)


def _native_frontend(s: FrontendSettings):
    return _cfrontend.Frontend(**_native_args(s))


# ============================================================================ public API
_MAX_CHUNK = 1 << 16     # samples per internal step of `process` (about 4 s at 16 kHz)
_MAX_BATCH = 256         # clips per internal step of `compute_features_batch`


class Frontend:
    """Streaming frontend: feed int16 chunks of any size, get the new feature frames.

    Output is uint16 [n_new_frames, channels] for the microfrontend (bit-identical to MLTK's
    AudioFeatureGenerator fed the same stream) and float32 [n_new_frames, n_coefficients]
    for `fe.frontend_type == "mfcc"`. State (DC notch, leftover samples, noise estimate)
    carries over between calls until `reset()`.

    `native`: None (default) runs the microfrontend in C when `keywire.agent._cfrontend` is
    built and in numpy otherwise; True requires the C one (RuntimeError if it is not built);
    False forces numpy. Both give identical features. MFCC always runs in numpy.
    """

    def __init__(self, settings: FrontendSettings, native: Optional[bool] = None) -> None:
        validate_settings(settings)
        self.settings = settings
        self._mfcc = None
        self._native = None
        if settings.frontend_type == "mfcc":
            from .mfcc import MfccFrontend
            self._mfcc = MfccFrontend(settings)
            self._tables: Optional[_Tables] = None
        else:
            self._tables = _tables(settings)
            if _use_native(native):
                self._native = _native_frontend(settings)
        self.reset()

    @property
    def native(self) -> bool:
        """Whether this frontend runs the compiled implementation."""
        return self._native is not None

    @property
    def n_channels(self) -> int:
        return self.settings.n_channels

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self._mfcc is not None else np.uint16)

    def reset(self) -> None:
        """Back to the state of a fresh frontend (MLTK resets per clip)."""
        if self._mfcc is not None:
            self._mfcc.reset()
            return
        if self._native is not None:
            self._native.reset()
            return
        t = self._tables
        self._buf = np.zeros(0, dtype=np.int16)
        self._dc_in = 0
        self._dc_out = 0
        self._estimate = np.zeros(t.n_channels, dtype=np.int64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Consume int16 samples (mono, any count); return the feature frames completed by them."""
        x = _as_int16_mono(samples)
        c = self._native
        if c is not None:
            if not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)
            out = np.empty((c.frames_for(len(x)), self._tables.n_channels), dtype=np.uint16)
            c.process(x, out)
            return out
        if len(x) > _MAX_CHUNK:
            # Long inputs (whole files) go through in pieces: same result, bounded memory.
            parts = [self.process(x[i:i + _MAX_CHUNK]) for i in range(0, len(x), _MAX_CHUNK)]
            return np.concatenate(parts)
        if self._mfcc is not None:
            return self._mfcc.process(x)
        t = self._tables
        if t.dc_enable and len(x):
            x, self._dc_in, self._dc_out = _dc_notch(x, t.dc_coef, self._dc_in, self._dc_out)
        buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        if len(buf) < t.size:
            self._buf = buf.copy()
            return np.zeros((0, t.n_channels), dtype=np.uint16)
        n = (len(buf) - t.size) // t.step + 1
        frames = np.lib.stride_tricks.sliding_window_view(buf, t.size)[::t.step][:n]
        sig = _windowed_spectrum(frames, t)
        out, self._estimate = _nr_pcan_log(sig, self._estimate, t)
        self._buf = buf[n * t.step:].copy()
        return out

    def close(self) -> None:
        """Nothing to release; present for the engine contract."""


def _as_int16_mono(samples: np.ndarray) -> np.ndarray:
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


def compute_features(samples: np.ndarray, settings: FrontendSettings,
                     native: Optional[bool] = None) -> np.ndarray:
    """Features of one whole clip from a fresh frontend: [frames, channels]
    (uint16, or float32 for MFCC). frames = (len - window) // step + 1.
    `native` as for `Frontend`."""
    return Frontend(settings, native=native).process(samples)


def compute_features_batch(clips: np.ndarray, settings: FrontendSettings,
                           native: Optional[bool] = None) -> np.ndarray:
    """Features of many equal-length clips [n, samples], each from a fresh frontend:
    [n, frames, channels]. In C clip by clip, or in numpy vectorised over clips (for training
    feature extraction). `native` as for `Frontend`."""
    clips = np.asarray(clips)
    if clips.ndim != 2:
        raise AudioError(f"compute_features_batch needs a [clips, samples] array, got shape {clips.shape}")
    if clips.dtype != np.int16:
        clips = _as_int16_mono(clips.reshape(-1)).reshape(clips.shape)
    if settings.frontend_type == "mfcc":
        from .mfcc import mfcc_features
        return mfcc_features(clips, settings)
    t = _tables(settings)
    if _use_native(native):
        b, length = clips.shape
        n = 0 if length < t.size else (length - t.size) // t.step + 1
        out = np.empty((b, n, t.n_channels), dtype=np.uint16)
        if b:
            _native_frontend(settings).process_batch(np.ascontiguousarray(clips), b, out)
        return out
    if clips.shape[0] > _MAX_BATCH:
        return np.concatenate([compute_features_batch(clips[i:i + _MAX_BATCH], settings, native=False)
                               for i in range(0, clips.shape[0], _MAX_BATCH)])
    b, length = clips.shape
    if length < t.size or b == 0:
        return np.zeros((b, 0 if length < t.size else (length - t.size) // t.step + 1, t.n_channels),
                        dtype=np.uint16)
    if t.dc_enable:
        if b >= 64:   # numpy across clips beats the per-clip Python loop for big batches
            clips = _dc_notch_batch(clips, t.dc_coef)
        else:
            clips = np.stack([_dc_notch(c, t.dc_coef, 0, 0)[0] for c in clips])
    n = (length - t.size) // t.step + 1
    frames = np.lib.stride_tricks.sliding_window_view(clips, t.size, axis=1)[:, ::t.step][:, :n]
    sig = _windowed_spectrum(frames, t)
    estimate = np.zeros((b, t.n_channels), dtype=np.int64)
    out, _ = _nr_pcan_log(sig, estimate, t)
    return out


def dynamic_scale_range(settings: FrontendSettings) -> int:
    """MLTK's int8 dynamic range in uint16 units: range_db * 2^log_scale_shift * ln(10)/20."""
    return int(float(_f32(settings.quantize_dynamic_scale_range_db) * _f32(1 << settings.log_scale_shift))
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
    """Quantise float MFCC features with the model input's own (scale, zero_point), as
    TFLite's quantize does: q = clamp(round_half_away(v / scale) + zero_point)."""
    if scale <= 0:
        raise ParamsError(f"model input scale must be positive for MFCC features, got {scale}")
    v = np.asarray(values, dtype=np.float64) / float(scale)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + int(zero_point)
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)
