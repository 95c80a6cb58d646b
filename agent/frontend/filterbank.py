"""The microfrontend's mel filterbank: Q12 triangular weights per FFT bin, exact channel
sums of the bins' energies, and the rounded integer square root that follows."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keywire.protocol.errors import ParamsError
from keywire.protocol.frontend_settings import FrontendSettings

FILTERBANK_BITS = 12      # kFilterbankBits


def freq_to_mel(freq: np.ndarray) -> np.ndarray:
    """FreqToMel as the microfrontend computes it: 1127 * log1p(f / 700) in double, stored as float."""
    return (1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)).astype(np.float32)


@dataclass(frozen=True)
class Filterbank:
    """Q12 weights/unweights per FFT bin and the bins' channel ranges."""

    start: int                 # first FFT bin used
    end: int                   # one past the last
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


def build_filterbank(s: FrontendSettings, spectrum_size: int) -> Filterbank:
    """Q12 triangular mel weights exactly as FilterbankPopulateState builds them."""
    f32 = np.float32
    nch = s.filterbank_n_channels
    lower = float(f32(s.filterbank_lower_band_limit))
    upper = float(f32(s.filterbank_upper_band_limit))
    mel_low = freq_to_mel(f32(lower))
    mel_hi = freq_to_mel(f32(upper))
    mel_span = f32(mel_hi - mel_low)
    mel_spacing = f32(mel_span / f32(nch + 1))
    centers = np.array([f32(mel_low + f32(mel_spacing * f32(i + 1))) for i in range(nch + 1)], dtype=f32)
    hz_per_sbin = f32(0.5 * s.sample_rate_hz / (float(f32(spectrum_size)) - 1.0))
    start = int(1.5 + float(f32(f32(lower) / hz_per_sbin)))   # float / float in C

    def mel_of_bin(i: int) -> np.float32:
        return freq_to_mel(f32(np.float64(i) * np.float64(hz_per_sbin)))

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
            w = f32(f32(centers[chan] - mel_of_bin(fr)) / f32(centers[chan] - denom))
            weights[chan, fr] = math.floor(float(w) * (1 << FILTERBANK_BITS) + 0.5)
            unweights[chan, fr] = math.floor((1.0 - float(w)) * (1 << FILTERBANK_BITS) + 0.5)
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
    return Filterbank(
        start=start, end=end, n_channels=nch,
        weights=weights[chan_of_bin, bins].astype(np.float64),
        unweights=unweights[chan_of_bin, bins].astype(np.float64),
        range_starts=np.asarray(chan_start)[nonempty] - start, nonempty=nonempty)


def round_sqrt(n: np.ndarray) -> np.ndarray:
    """Sqrt64/Sqrt32 on float-held integers < 2^53: square root rounded to nearest
    (Sqrt32 never rounds 0xFFFF up)."""
    r = np.floor(np.sqrt(n))
    r -= (r * r > n)
    r += ((r + 1.0) * (r + 1.0) <= n)
    inc = (n - r * r) > r
    inc &= ~((r == 65535.0) & (n < 4294967296.0))
    return r + inc
