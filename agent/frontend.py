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

`fe.frontend_type == "mfcc"` selects the float MFCC frontend in `mfcc.py` instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union

import numpy as np

from .errors import ParamsError
from .settings import FrontendSettings

__all__ = [
    "Frontend",
    "compute_features",
    "compute_features_batch",
    "to_model_input",
    "to_model_input_mfcc",
    "dynamic_scale_range",
    "validate_settings",
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
    """kissfft (FIXED_POINT=16) real FFT of size `n`: the complex FFT of n/2 points
    decomposed in kissfft's radix order, its twiddles and the real-split twiddles."""

    n: int
    perm: np.ndarray                    # input (pair) index for each position before the stages
    stages: tuple                       # (radix, m, fstride, tw_r, tw_i) deepest first
    super_r: np.ndarray                 # split twiddles for k = 1..ncfft/2
    super_i: np.ndarray


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


def _twiddle(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kf_cexp in fixed point: floor(0.5 + 32767 * cos/sin(phase))."""
    return (np.floor(0.5 + 32767.0 * np.cos(phase)).astype(np.int32),
            np.floor(0.5 + 32767.0 * np.sin(phase)).astype(np.int32))


@lru_cache(maxsize=8)
def _fft_plan(n: int) -> _FftPlan:
    ncfft = n // 2
    factors = _kiss_factors(ncfft)
    if any(p not in (2, 4) for p, _ in factors):
        raise ParamsError(f"FFT size {n} is not a power of two")
    tw_r, tw_i = _twiddle(-2.0 * math.pi * np.arange(ncfft) / ncfft)

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
        stages.append((p, m, fstride, tw_r[idx], tw_i[idx]))
        fstride *= p
    stages.reverse()  # butterflies run from the deepest recursion level up

    k = np.arange(1, ncfft // 2 + 1)
    sr, si = _twiddle(-math.pi * (k / ncfft + 0.5))
    return _FftPlan(n=n, perm=perm, stages=tuple(stages), super_r=sr, super_i=si)


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
    fb_matrix: np.ndarray       # float64 [end-start, channels]: weights of channel c+1 + unweights of c
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


def _filterbank(s: FrontendSettings, spectrum_size: int) -> tuple[int, int, np.ndarray]:
    """Q12 triangular mel weights exactly as FilterbankPopulateState builds them, folded into
    one matrix: output channel c = sum(weights of channel c+1 + unweights of channel c)."""
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
    start = int(1.5 + float(np.float32(lower)) / float(hz_per_sbin))

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
    matrix = weights[1:, :] + unweights[:-1, :]           # [nch, bins]
    return start, end, np.ascontiguousarray(matrix[:, start:end].T.astype(np.float64))


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
    start, end, matrix = _filterbank(s, n // 2 + 1)
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
    return _Tables(size=size, step=step, fft_size=n, window=_hann_q12(size), plan=_fft_plan(n),
                   start=start, end=end, fb_matrix=matrix, n_channels=nch,
                   nr_enable=bool(s.noise_reduction_enable),
                   smoothing_bits=int(s.noise_reduction_smoothing_bits), smoothing=smoothing,
                   min_signal_remaining=msr, pcan_enable=bool(s.pcan_enable), gain_lut=lut,
                   snr_shift=snr_shift, log_enable=bool(s.log_scale_enable),
                   log_shift=int(s.log_scale_shift), correction_bits=correction_bits,
                   dc_enable=bool(s.dc_notch_filter_enable), dc_coef=dc_coef)


# ============================================================================ fixed-point helpers
def _wrap16(x: np.ndarray) -> np.ndarray:
    """Store into int16 (two's complement wrap), kept in an int32 array."""
    return (x << 16) >> 16


def _sround(x: np.ndarray) -> np.ndarray:
    """kissfft sround: (int16)((x + 2^14) >> 15)."""
    return _wrap16((x + 16384) >> 15)


def _fixdiv(x: np.ndarray, k: int) -> np.ndarray:
    """C_FIXDIV: x * (32767 / k) rounded back to Q15."""
    return _sround(x * (32767 // k))


def _cmul(ar, ai, br, bi):
    return _sround(ar * br - ai * bi), _sround(ar * bi + ai * br)


def _kiss_fftr(x: np.ndarray, plan: _FftPlan) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point real FFT of int16 rows x [..., n] -> (re, im) [..., n/2+1] int32 (int16 values)."""
    lead = x.shape[:-1]
    ncfft = plan.n // 2
    x = x.reshape(-1, plan.n)
    b = x.shape[0]
    re = np.ascontiguousarray(x[:, 0::2][:, plan.perm])
    im = np.ascontiguousarray(x[:, 1::2][:, plan.perm])
    for p, m, fstride, twr, twi in plan.stages:
        re = re.reshape(b, fstride, p, m)
        im = im.reshape(b, fstride, p, m)
        if p == 4:
            a0r, a0i = _fixdiv(re[:, :, 0], 4), _fixdiv(im[:, :, 0], 4)
            a1r, a1i = _fixdiv(re[:, :, 1], 4), _fixdiv(im[:, :, 1], 4)
            a2r, a2i = _fixdiv(re[:, :, 2], 4), _fixdiv(im[:, :, 2], 4)
            a3r, a3i = _fixdiv(re[:, :, 3], 4), _fixdiv(im[:, :, 3], 4)
            s0r, s0i = _cmul(a1r, a1i, twr[1], twi[1])
            s1r, s1i = _cmul(a2r, a2i, twr[2], twi[2])
            s2r, s2i = _cmul(a3r, a3i, twr[3], twi[3])
            s5r, s5i = _wrap16(a0r - s1r), _wrap16(a0i - s1i)
            f0r, f0i = _wrap16(a0r + s1r), _wrap16(a0i + s1i)
            s3r, s3i = _wrap16(s0r + s2r), _wrap16(s0i + s2i)
            s4r, s4i = _wrap16(s0r - s2r), _wrap16(s0i - s2i)
            out_r = np.empty_like(re)
            out_i = np.empty_like(im)
            out_r[:, :, 2] = _wrap16(f0r - s3r)
            out_i[:, :, 2] = _wrap16(f0i - s3i)
            out_r[:, :, 0] = _wrap16(f0r + s3r)
            out_i[:, :, 0] = _wrap16(f0i + s3i)
            out_r[:, :, 1] = _wrap16(s5r + s4i)
            out_i[:, :, 1] = _wrap16(s5i - s4r)
            out_r[:, :, 3] = _wrap16(s5r - s4i)
            out_i[:, :, 3] = _wrap16(s5i + s4r)
        else:  # radix 2
            a0r, a0i = _fixdiv(re[:, :, 0], 2), _fixdiv(im[:, :, 0], 2)
            a1r, a1i = _fixdiv(re[:, :, 1], 2), _fixdiv(im[:, :, 1], 2)
            tr, ti = _cmul(a1r, a1i, twr[1], twi[1])
            out_r = np.empty_like(re)
            out_i = np.empty_like(im)
            out_r[:, :, 1] = _wrap16(a0r - tr)
            out_i[:, :, 1] = _wrap16(a0i - ti)
            out_r[:, :, 0] = _wrap16(a0r + tr)
            out_i[:, :, 0] = _wrap16(a0i + ti)
        re, im = out_r, out_i
    re = re.reshape(b, ncfft)
    im = im.reshape(b, ncfft)

    fr = np.zeros((b, ncfft + 1), dtype=np.int32)
    fi = np.zeros((b, ncfft + 1), dtype=np.int32)
    tdr, tdi = _fixdiv(re[:, 0], 2), _fixdiv(im[:, 0], 2)
    fr[:, 0] = _wrap16(tdr + tdi)
    fr[:, ncfft] = _wrap16(tdr - tdi)
    k = np.arange(1, ncfft // 2 + 1)
    fpkr, fpki = _fixdiv(re[:, k], 2), _fixdiv(im[:, k], 2)
    fpnkr, fpnki = _fixdiv(re[:, ncfft - k], 2), _fixdiv(_wrap16(-im[:, ncfft - k]), 2)
    f1r, f1i = _wrap16(fpkr + fpnkr), _wrap16(fpki + fpnki)
    f2r, f2i = _wrap16(fpkr - fpnkr), _wrap16(fpki - fpnki)
    twr, twi = _cmul(f2r, f2i, plan.super_r, plan.super_i)
    fr[:, k] = _wrap16((f1r + twr) >> 1)
    fi[:, k] = _wrap16((f1i + twi) >> 1)
    fr[:, ncfft - k] = _wrap16((f1r - twr) >> 1)
    fi[:, ncfft - k] = _wrap16((twi - f1i) >> 1)
    return fr.reshape(lead + (ncfft + 1,)), fi.reshape(lead + (ncfft + 1,))


def _round_sqrt(n: np.ndarray) -> np.ndarray:
    """Sqrt64/Sqrt32: integer square root rounded to nearest (Sqrt32 never rounds 0xFFFF up)."""
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    r -= (r * r > n)
    r += ((r + 1) * (r + 1) <= n)
    inc = (n - r * r) > r
    inc &= ~((r == 0xFFFF) & (n < (1 << 32)))
    return r + inc


def _windowed_spectrum(frames: np.ndarray, t: _Tables) -> np.ndarray:
    """Window -> scaled fixed-point FFT -> filterbank -> sqrt; frames int16 [..., size] ->
    uint32 values as int64 [..., channels]."""
    lead = frames.shape[:-1]
    x = frames.reshape(-1, t.size).astype(np.int32)
    w = (x * t.window) >> _WINDOW_BITS                                   # int16 values
    w = _wrap16(w)
    max_abs = _wrap16(np.abs(w)).max(axis=1) if w.shape[0] else np.zeros(0, np.int32)
    max_abs = np.maximum(max_abs, 0)
    msb = np.zeros_like(max_abs)
    nz = max_abs > 0
    msb[nz] = np.frexp(max_abs[nz].astype(np.float64))[1]
    shift = (15 - msb).astype(np.int32)
    fft_in = np.zeros((x.shape[0], t.fft_size), dtype=np.int32)
    fft_in[:, :t.size] = _wrap16(w << shift[:, None])
    fr, fi = _kiss_fftr(fft_in, t.plan)
    fr = fr[:, t.start:t.end].astype(np.int64)
    fi = fi[:, t.start:t.end].astype(np.int64)
    energy = (fr * fr + fi * fi) & _U32                                   # uint32
    work = energy.astype(np.float64) @ t.fb_matrix                        # exact: < 2^53
    acc = np.rint(work).astype(np.int64)
    out = _round_sqrt(acc) >> shift[:, None].astype(np.int64)
    return (out & _U32).reshape(lead + (t.n_channels,))


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


def _log_scale(x: np.ndarray, t: _Tables) -> np.ndarray:
    """LogScaleApply: fixed-point natural log, scaled by 2^shift, saturated to uint16."""
    if not t.log_enable:
        return np.minimum(x, 0xFFFF).astype(np.uint16)
    if t.correction_bits < 0:
        v = x >> -t.correction_bits
    else:
        v = (x << t.correction_bits) & _U32
    valid = v > 1
    v = np.where(valid, v, 2)
    integer = _msb_array(v) - 1
    frac = v - (np.int64(1) << integer)
    frac = np.where(integer < _LOG_SCALE_LOG2,
                    np.left_shift(frac, np.maximum(_LOG_SCALE_LOG2 - integer, 0)),
                    np.right_shift(frac, np.maximum(integer - _LOG_SCALE_LOG2, 0)))
    seg = frac >> (_LOG_SCALE_LOG2 - _LOG_SEGMENTS_LOG2)
    c0 = _LOG_LUT[seg]
    c1 = _LOG_LUT[seg + 1]
    seg_unit = (1 << _LOG_SCALE_LOG2) >> _LOG_SEGMENTS_LOG2
    rel = ((c1 - c0) * (frac - seg_unit * seg)) >> _LOG_SCALE_LOG2
    fraction = (frac + c0 + rel) & _U32
    log2 = ((integer << _LOG_SCALE_LOG2) + fraction) & _U32
    rnd = (1 << _LOG_SCALE_LOG2) // 2
    loge = ((_LOG_COEFF * log2 + rnd) >> _LOG_SCALE_LOG2) & _U32
    scaled = ((((loge << t.log_shift) & _U32) + rnd) & _U32) >> _LOG_SCALE_LOG2
    scaled = np.where(valid, scaled, 0)
    return np.minimum(scaled, 0xFFFF).astype(np.uint16)


# ============================================================================ DC notch
@lru_cache(maxsize=4)
def _dc_tables(coef: int) -> tuple[list, list]:
    """Lookup lists for the DC notch recursion, indexable with negative Python indices:
    feedback[y] = round(coef * y / 2^15) (MLTK's ((p >> 14) + 1) >> 1) for int16 y and
    wrap[s] = int16(s) for |s| < 2^16."""
    ys = np.concatenate([np.arange(0, 32768), np.arange(-32768, 0)]).astype(np.int64)
    fb = (((coef * ys) >> 14) + 1) >> 1
    ss = np.concatenate([np.arange(0, 65536), np.arange(-65536, 0)]).astype(np.int64)
    wr = ((ss + 32768) & 0xFFFF) - 32768
    return fb.tolist(), wr.tolist()


def _dc_notch(x: np.ndarray, coef: int, prev_in: int, prev_out: int) -> tuple[np.ndarray, int, int]:
    """y[n] = int16(x[n] - x[n-1] + round(coef * y[n-1] / 2^15)) over one stream."""
    if len(x) == 0:
        return x.astype(np.int16), prev_in, prev_out
    xi = x.astype(np.int32)
    d = np.empty(len(xi), dtype=np.int32)
    d[0] = xi[0] - prev_in
    d[1:] = xi[1:] - xi[:-1]
    d = _wrap16(d)
    fb, wr = _dc_tables(coef)
    y = prev_out
    out = []
    append = out.append
    for di in d.tolist():
        y = wr[di + fb[y]]
        append(y)
    return np.array(out, dtype=np.int16), int(xi[-1]), y


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
    """Noise reduction (+PCAN) frame by frame over sig [..., frames, ch]; estimate [..., ch] is
    updated in place. Returns uint16 log features [..., frames, ch]."""
    if t.nr_enable and sig.shape[-2]:
        sb = t.smoothing_bits
        sm = t.smoothing.astype(np.int64)
        one_minus = (1 << _NOISE_REDUCTION_BITS) - sm
        msr = t.min_signal_remaining
        out = np.empty_like(sig)
        for f in range(sig.shape[-2]):
            s = sig[..., f, :]
            up = (s << sb) & _U32
            est = (up * sm + estimate * one_minus) >> _NOISE_REDUCTION_BITS
            estimate[...] = est
            floor = (s * msr) >> _NOISE_REDUCTION_BITS
            sub = (up - np.minimum(est, up)) >> sb
            o = np.maximum(sub, floor)
            if t.pcan_enable:
                gain = _wide_dynamic(est, t.gain_lut)
                snr = ((o.astype(np.uint64) * gain.astype(np.uint64)) >> np.uint64(t.snr_shift)).astype(np.int64) & _U32
                o = _pcan_shrink(snr)
            out[..., f, :] = o
        sig = out
    return _log_scale(sig, t), estimate


# ============================================================================ public API
class Frontend:
    """Streaming frontend: feed int16 chunks of any size, get the new feature frames.

    Output is uint16 [n_new_frames, channels] for the microfrontend (bit-identical to MLTK's
    AudioFeatureGenerator fed the same stream) and float32 [n_new_frames, n_coefficients]
    for `fe.frontend_type == "mfcc"`. State (DC notch, leftover samples, noise estimate)
    carries over between calls until `reset()`.
    """

    def __init__(self, settings: FrontendSettings) -> None:
        validate_settings(settings)
        self.settings = settings
        self._mfcc = None
        if settings.frontend_type == "mfcc":
            from .mfcc import MfccFrontend
            self._mfcc = MfccFrontend(settings)
            self._tables: Optional[_Tables] = None
        else:
            self._tables = _tables(settings)
        self.reset()

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
        t = self._tables
        self._buf = np.zeros(0, dtype=np.int16)
        self._dc_in = 0
        self._dc_out = 0
        self._estimate = np.zeros(t.n_channels, dtype=np.int64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Consume int16 samples; return the feature frames completed by them."""
        x = np.asarray(samples)
        if x.ndim != 1:
            x = x.reshape(-1)
        if x.dtype != np.int16:
            x = x.astype(np.int16)
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


def compute_features(samples: np.ndarray, settings: FrontendSettings) -> np.ndarray:
    """Features of one whole clip from a fresh frontend: [frames, channels]
    (uint16, or float32 for MFCC). frames = (len - window) // step + 1."""
    fe = Frontend(settings)
    return fe.process(np.asarray(samples).reshape(-1))


def compute_features_batch(clips: np.ndarray, settings: FrontendSettings) -> np.ndarray:
    """Features of many equal-length clips [n, samples], each from a fresh frontend:
    [n, frames, channels]. Vectorised over clips (for training feature extraction)."""
    clips = np.asarray(clips)
    if clips.ndim != 2:
        raise ValueError("compute_features_batch expects a [clips, samples] array")
    if clips.dtype != np.int16:
        clips = clips.astype(np.int16)
    if settings.frontend_type == "mfcc":
        from .mfcc import mfcc_features
        return mfcc_features(clips, settings)
    t = _tables(settings)
    b, length = clips.shape
    if length < t.size or b == 0:
        return np.zeros((b, 0 if length < t.size else (length - t.size) // t.step + 1, t.n_channels),
                        dtype=np.uint16)
    if t.dc_enable:
        clips = _dc_notch_batch(clips, t.dc_coef)
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
