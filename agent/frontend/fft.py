"""The microfrontend's FFT: kissfft's real FFT in 16-bit fixed point, and its plan.

The integer arithmetic runs on float64 (and complex128) arrays: every intermediate is an
integer below 2^53, so +, -, * and multiplication by powers of two are exact, and C's
`(x + 2^14) >> 15` becomes floor(x * 2^-15 + 0.5). This halves the numpy calls (real and
imaginary parts together) and lets BLAS do the exact filterbank sums later.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from keywire.protocol.errors import ParamsError

_Q15 = 1.0 / 32768.0


def next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


@dataclass(frozen=True)
class FftPlan:
    """kissfft (FIXED_POINT=16) real FFT of size `n`: the complex FFT of n/2 points in
    kissfft's radix order, its twiddles, and the real-split twiddles. Twiddles are complex128
    holding the exact Q15 integers."""

    n: int
    perm: np.ndarray                    # input pair index for each position before the stages
    stages: tuple                       # (radix, m, fstride, twiddles [p, m] complex) deepest first
    super_tw: np.ndarray                # split twiddles for k = 1..ncfft/2 (complex)


@dataclass(frozen=True)
class SplitBins:
    """Which step of kiss_fftr's split loop writes each output bin start..end-1."""

    k: np.ndarray          # the split loop's k for each bin
    first: np.ndarray      # True: the `freqdata[k]` write; False: `freqdata[ncfft-k]` (wins at ncfft/2)
    nk: np.ndarray         # ncfft - k
    twiddle: np.ndarray    # the split twiddle of each k


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
def fft_plan(n: int) -> FftPlan:
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
    return FftPlan(n=n, perm=perm, stages=tuple(stages), super_tw=_twiddle(-math.pi * (k / ncfft + 0.5)))


def split_bins(plan: FftPlan, start: int, end: int) -> SplitBins:
    """For output bins start..end-1 of kiss_fftr: the k of the split loop that writes each bin and
    whether it is the `freqdata[k]` (True) or the `freqdata[ncfft-k]` write (which wins at ncfft/2)."""
    ncfft = plan.n // 2
    bins = np.arange(start, end)
    first = bins < ncfft // 2
    k = np.where(first, bins, ncfft - bins)
    if np.any((k < 1) | (k > ncfft // 2)):
        raise ParamsError("fe.filterbank_* bands fall outside the FFT's bins")
    return SplitBins(k=k, first=first, nk=ncfft - k, twiddle=plan.super_tw[k - 1])


def wrap16_inplace(v: np.ndarray) -> None:
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


def _complex_fft_q15(z: np.ndarray, plan: FftPlan) -> np.ndarray:
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
            wrap16_inplace(_fvec(out))
        z = out
    return z.reshape(b, -1)


def spectrum_energy(fft_in: np.ndarray, plan: FftPlan, split: SplitBins) -> np.ndarray:
    """kiss_fftr (FIXED_POINT=16) of int16-valued rows [b, n], then |X|^2 of the bins `split`
    covers: float64 [b, bins] (exact uint32 values)."""
    b = fft_in.shape[0]
    pairs = fft_in.reshape(b, plan.n // 2, 2)[:, plan.perm]          # (x[2i], x[2i+1]) in kf_work order
    z = _complex_fft_q15(np.ascontiguousarray(pairs).view(np.complex128).reshape(b, -1), plan)
    fpk = np.take(z, split.k, axis=1)
    fpnk = np.conj(np.take(z, split.nk, axis=1))
    wrap16_inplace(_fvec(fpnk))                                        # -(-32768) stays -32768
    _round_q15_inplace(_fvec(fpk), 16383 * _Q15)                       # C_FIXDIV(., 2)
    _round_q15_inplace(_fvec(fpnk), 16383 * _Q15)
    f1k = fpk + fpnk
    f2k = fpk - fpnk
    wrap16_inplace(_fvec(f1k))
    wrap16_inplace(_fvec(f2k))
    f2k *= split.twiddle                                               # C_MUL by the split twiddle
    _round_q15_inplace(_fvec(f2k))
    wrap16_inplace(_fvec(f2k))
    out = np.where(split.first, f1k + f2k, np.conj(f1k - f2k))         # HALF_OF(...) below
    v = _fvec(out)
    np.multiply(v, 0.5, out=v)
    np.floor(v, out=v)                 # half of a sum of two int16 values: always inside int16
    re, im = out.real, out.imag
    return re * re + im * im
