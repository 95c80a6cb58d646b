"""The microfrontend's noise reduction and PCAN (per-channel automatic gain control).

Noise reduction keeps a smoothed per-channel noise estimate and subtracts it (keeping at
least `min_signal_remaining` of the signal); PCAN divides by a gain looked up from that
estimate (the wide dynamic function) and compresses. Only the estimate's recursion runs
frame by frame (vectorised over channels); everything else is vectorised over frames too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keywire.protocol.frontend_settings import FrontendSettings

NOISE_REDUCTION_BITS = 14  # kNoiseReductionBits
PCAN_SNR_BITS = 12         # kPcanSnrBits
_PCAN_OUTPUT_BITS = 6      # kPcanOutputBits
_WDF_BITS = 32             # kWideDynamicFunctionBits
GAIN_LUT_SIZE = 4 * _WDF_BITS - 3
U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class NoiseTables:
    """What noise reduction and PCAN precompute from `fe.noise_reduction_*` / `fe.pcan_*`."""

    nr_enable: bool
    smoothing_bits: int
    smoothing: np.ndarray       # uint64 per channel (even/odd)
    min_signal_remaining: int
    pcan_enable: bool
    gain_lut: np.ndarray        # int64 [125]
    snr_shift: int


def noise_tables(s: FrontendSettings, correction_bits: int) -> NoiseTables:
    """`correction_bits`: the FFT size's bit correction (MSB(fft) - 1 - filterbank bits / 2)."""
    f32 = np.float32
    q = 1 << NOISE_REDUCTION_BITS
    even = int(f32(s.noise_reduction_even_smoothing) * f32(q))
    odd = int(f32(s.noise_reduction_odd_smoothing) * f32(q))
    msr = int(f32(s.noise_reduction_min_signal_remaining) * f32(q))
    smoothing = np.where(np.arange(s.filterbank_n_channels) % 2 == 0, even, odd).astype(np.uint64)
    if s.pcan_enable:
        lut = pcan_lut(s, s.noise_reduction_smoothing_bits - correction_bits)
        snr_shift = s.pcan_gain_bits - correction_bits - PCAN_SNR_BITS
    else:
        lut, snr_shift = np.zeros(GAIN_LUT_SIZE, dtype=np.int64), 0
    return NoiseTables(nr_enable=bool(s.noise_reduction_enable),
                       smoothing_bits=int(s.noise_reduction_smoothing_bits), smoothing=smoothing,
                       min_signal_remaining=msr, pcan_enable=bool(s.pcan_enable), gain_lut=lut,
                       snr_shift=snr_shift)


def pcan_lut(s: FrontendSettings, input_bits: int) -> np.ndarray:
    """PcanGainControlPopulateState's wide-dynamic-function LUT (float32 arithmetic)."""
    f32 = np.float32
    strength = f32(s.pcan_strength)
    offset = f32(s.pcan_offset)
    gain_scale = f32(float(1 << s.pcan_gain_bits))
    div = f32(float(1 << input_bits)) if input_bits >= 0 else None

    def gain(x: int) -> int:
        xf = f32(f32(x) / div) if div is not None else f32(f32(x) * f32(float(1 << -input_bits)))
        base = f32(xf + offset)
        p = f32(math.pow(float(base), -float(strength)))
        g = f32(gain_scale * p)
        if g > 32767:
            return 32767
        return int(f32(g + f32(0.5)))

    def i16(v: int) -> int:
        return ((v + 32768) & 0xFFFF) - 32768

    lut = np.zeros(GAIN_LUT_SIZE, dtype=np.int64)
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
    return result & U32       # int16 -> uint32 conversion


def _pcan_shrink(x: np.ndarray) -> np.ndarray:
    lo = (x * x) >> (2 + 2 * PCAN_SNR_BITS - _PCAN_OUTPUT_BITS)
    hi = (x >> (PCAN_SNR_BITS - _PCAN_OUTPUT_BITS)) - (1 << _PCAN_OUTPUT_BITS)
    return np.where(x < (2 << PCAN_SNR_BITS), lo & U32, hi & U32)


def reduce_noise(sig: np.ndarray, estimate: np.ndarray, t: NoiseTables) -> np.ndarray:
    """Noise reduction then PCAN over sig [..., frames, ch] (uint32 values in int64);
    `estimate` [..., ch] is the noise estimate, updated in place. Returns the new signal."""
    if not t.nr_enable or not sig.shape[-2]:
        return sig
    sb = t.smoothing_bits
    up = (sig << sb) & U32                                     # signal << smoothing_bits (uint32)
    a = up * t.smoothing.astype(np.int64)
    one_minus = (1 << NOISE_REDUCTION_BITS) - t.smoothing.astype(np.int64)
    est_all = np.empty_like(sig)
    est = estimate
    for f in range(sig.shape[-2]):
        est = (a[..., f, :] + est * one_minus) >> NOISE_REDUCTION_BITS
        est_all[..., f, :] = est
    estimate[...] = est
    floor = (sig * t.min_signal_remaining) >> NOISE_REDUCTION_BITS
    sub = (up - np.minimum(est_all, up)) >> sb
    sig = np.maximum(sub, floor)
    if t.pcan_enable:
        gain = _wide_dynamic(est_all, t.gain_lut)
        snr = ((sig.astype(np.uint64) * gain.astype(np.uint64)) >> np.uint64(t.snr_shift)).astype(np.int64) & U32
        sig = _pcan_shrink(snr)
    return sig
