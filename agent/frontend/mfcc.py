"""MFCC features (the TensorFlow KWS tutorials'), selected by `fe.frontend_type = "mfcc"`.

Same framing as the microfrontend (fe.window_size_ms / fe.window_step_ms, FFT of
`settings.fft_size` points), then the computation of `tf.signal`'s MFCC recipe in numpy:

  periodic Hann window -> |rfft| (magnitude) -> HTK-mel triangular filterbank with
  fe.filterbank_n_channels bands between fe.filterbank_lower/upper_band_limit
  (tf.signal.linear_to_mel_weight_matrix) -> log(mel + 1e-6) -> DCT-II scaled by
  1/sqrt(2 * n_mel) (tf.signal.mfccs_from_log_mel_spectrograms) -> first fe.mfcc_n_coefficients.

Output is float32 [frames, n_coefficients]. Every frame is computed from its own samples
only (no recursive state), so streaming in any chunk size gives the whole-clip result.
Models take it as float input, or int8 through the model's own input quantisation
(`to_model_input_mfcc(values, scale, zero_point)`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from keywire.protocol.errors import ParamsError
from keywire.protocol.frontend_settings import FrontendSettings
from .framing import FrameBuffer, frames_of

_LOG_OFFSET = 1e-6


def validate_mfcc(s: FrontendSettings) -> None:
    """Raise `ParamsError` naming the first MFCC setting that cannot work."""
    if not 1 <= s.mfcc_n_coefficients <= s.filterbank_n_channels:
        raise ParamsError(
            f"fe.mfcc_n_coefficients must be 1..fe.filterbank_n_channels "
            f"({s.filterbank_n_channels}), got {s.mfcc_n_coefficients}")


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_weight_matrix(n_mel: int, n_bins: int, sample_rate: float, lower_hz: float, upper_hz: float) -> np.ndarray:
    """[n_bins, n_mel] triangular HTK-mel weights (DC bin gets none), as tf.signal builds them."""
    nyquist = sample_rate / 2.0
    freqs = np.linspace(0.0, nyquist, n_bins)[1:]
    spec_mel = _hz_to_mel(freqs)[:, None]
    edges = np.linspace(_hz_to_mel(lower_hz), _hz_to_mel(upper_hz), n_mel + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slope = (spec_mel - lower) / (center - lower)
    upper_slope = (upper - spec_mel) / (upper - center)
    w = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    return np.vstack([np.zeros((1, n_mel)), w])


def dct_matrix(n_mel: int, n_coefficients: int) -> np.ndarray:
    """[n_mel, n_coefficients] unnormalised DCT-II times 1/sqrt(2 n_mel) (TF's MFCC scaling)."""
    n = np.arange(n_mel)[:, None]
    k = np.arange(n_coefficients)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_mel)) / np.sqrt(2.0 * n_mel)


@dataclass(frozen=True)
class _MfccTables:
    size: int
    step: int
    fft_size: int
    window: np.ndarray      # float64 [size]
    mel: np.ndarray         # float64 [bins, n_mel]
    dct: np.ndarray         # float64 [n_mel, n_coef]
    n_coefficients: int


@lru_cache(maxsize=8)
def _tables(s: FrontendSettings) -> _MfccTables:
    size = s.window_samples
    n = np.arange(size)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / size)   # periodic Hann
    nfft = s.fft_size
    mel = mel_weight_matrix(s.filterbank_n_channels, nfft // 2 + 1, float(s.sample_rate_hz),
                            float(s.filterbank_lower_band_limit), float(s.filterbank_upper_band_limit))
    return _MfccTables(size=size, step=s.step_samples, fft_size=nfft, window=window, mel=mel,
                       dct=dct_matrix(s.filterbank_n_channels, s.mfcc_n_coefficients),
                       n_coefficients=s.mfcc_n_coefficients)


def _frames_to_mfcc(frames: np.ndarray, t: _MfccTables) -> np.ndarray:
    """int16 frames [..., size] -> float32 MFCCs [..., n_coefficients]; each row independent."""
    lead = frames.shape[:-1]
    x = frames.reshape(-1, t.size).astype(np.float64) / 32768.0
    mag = np.abs(np.fft.rfft(x * t.window, n=t.fft_size, axis=-1))
    # Row-by-row products keep every frame's result independent of how many frames share a call.
    log_mel = np.log(np.einsum("fb,bm->fm", mag, t.mel, optimize=False) + _LOG_OFFSET)
    mfcc = np.einsum("fm,mc->fc", log_mel, t.dct, optimize=False)
    return mfcc.astype(np.float32).reshape(lead + (t.n_coefficients,))


def mfcc_features(clips: np.ndarray, s: FrontendSettings) -> np.ndarray:
    """MFCCs of whole clips: [..., samples] -> [..., frames, n_coefficients] float32."""
    t = _tables(s)
    return _frames_to_mfcc(frames_of(np.asarray(clips), t.size, t.step), t)


class MfccFrontend:
    """Streaming MFCC: keeps the samples of the next, incomplete frames between calls."""

    def __init__(self, settings: FrontendSettings) -> None:
        self.settings = settings
        self._t = _tables(settings)
        self._framing = FrameBuffer(self._t.size, self._t.step)

    def reset(self) -> None:
        self._framing.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """int16 samples -> float32 MFCCs [n_new_frames, n_coefficients]."""
        return _frames_to_mfcc(self._framing.push(samples), self._t)
