"""Fresh-machine references: TensorFlow's audio_microfrontend_op (the same TFLM C library that
MLTK wraps; identical to MLTK at 8 kHz and at 16 kHz with 20/25/32/40 ms windows, DC notch off)
and tf.signal's MFCC recipe, both on real espeak-ng speech."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keywire.agent.frontend import compute_features
from keywire.agent.frontend.mfcc import mfcc_features
from keywire.protocol.frontend_settings import FrontendSettings

from .conftest import MFCC

tf = pytest.importorskip("tensorflow")


def _microfrontend_op():
    try:
        from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op
    except Exception as exc:  # pragma: no cover - depends on the TF build
        pytest.skip(f"TensorFlow has no audio_microfrontend_op: {exc}")
    return audio_microfrontend_op.audio_microfrontend


@pytest.mark.parametrize("rate,window_ms,step_ms,channels,pcan,min_signal", [
    (16000, 25, 10, 40, False, 0.05),
    (16000, 25, 10, 32, True, 0.05),
    (16000, 20, 20, 40, True, 0.05),
    (16000, 40, 20, 64, False, 0.4),
    (8000, 30, 10, 40, True, 0.05),
    (8000, 30, 20, 24, False, 0.05),
])
def test_matches_tensorflow_microfrontend(speech_stream, rate, window_ms, step_ms, channels, pcan, min_signal,
                                          native):
    op = _microfrontend_op()
    audio = speech_stream if rate == 16000 else speech_stream[::2]
    upper = 7500.0 if rate == 16000 else 3800.0
    s = FrontendSettings(sample_rate_hz=rate, window_size_ms=window_ms, window_step_ms=step_ms,
                         filterbank_n_channels=channels, filterbank_upper_band_limit=upper,
                         noise_reduction_enable=True, noise_reduction_min_signal_remaining=min_signal,
                         pcan_enable=pcan)
    want = op(tf.constant(audio), sample_rate=rate, window_size=window_ms, window_step=step_ms,
              num_channels=channels, upper_band_limit=upper, lower_band_limit=125.0,
              min_signal_remaining=min_signal, enable_pcan=pcan, out_scale=1, out_type=tf.uint16).numpy()
    got = compute_features(audio, s, native=native)
    assert got.shape == want.shape
    assert int(want.max()) > 300          # real signal, not an all-zero comparison
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_coefficients", [10, 13, 40])
def test_mfcc_matches_tf_signal(speech_stream, n_coefficients):
    s = dataclasses.replace(MFCC, mfcc_n_coefficients=n_coefficients)
    x = speech_stream.astype(np.float32) / 32768.0
    stft = tf.signal.stft(x, frame_length=s.window_samples, frame_step=s.step_samples, fft_length=s.fft_size)
    mel = tf.signal.linear_to_mel_weight_matrix(s.filterbank_n_channels, s.fft_size // 2 + 1, s.sample_rate_hz,
                                                s.filterbank_lower_band_limit, s.filterbank_upper_band_limit)
    log_mel = tf.math.log(tf.tensordot(tf.abs(stft), mel, 1) + 1e-6)
    want = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :n_coefficients].numpy()
    got = mfcc_features(speech_stream, s)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def _extreme_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = np.arange(16000)
    return {
        "square_1k": np.where(np.sin(n * 2 * np.pi * 1000 / 16000) >= 0, 32767, -32768),
        "square_130": np.where(np.sin(n * 2 * np.pi * 130 / 16000) >= 0, 32767, -32768),
        "uniform_full_scale": rng.integers(-32768, 32768, 16000),
        "dc_minimum": np.full(16000, -32768),
        "impulses": np.where(n % 397 == 0, -32768, 0),
        "nyquist": np.where(n % 2 == 0, 32767, -32768),
        "tiny": rng.integers(-2, 3, 16000),
    }


@pytest.mark.parametrize("name", sorted(_extreme_signals()))
def test_extreme_signals_match_tensorflow_microfrontend(name, native):
    """Full-scale, clipped and near-silent inputs exercise the saturation/wrap corners."""
    op = _microfrontend_op()
    audio = _extreme_signals()[name].astype(np.int16)
    s = FrontendSettings(window_size_ms=25, window_step_ms=10, filterbank_n_channels=40,
                         noise_reduction_enable=True, pcan_enable=True)
    want = op(tf.constant(audio), sample_rate=16000, window_size=25, window_step=10, num_channels=40,
              enable_pcan=True, out_scale=1, out_type=tf.uint16).numpy()
    np.testing.assert_array_equal(compute_features(audio, s, native=native), want)


@pytest.mark.parametrize("changes", [
    {"log_scale_enable": False},
    {"log_scale_shift": 4},
    {"log_scale_shift": 9},
    {"noise_reduction_smoothing_bits": 7},
    {"noise_reduction_even_smoothing": 0.1, "noise_reduction_odd_smoothing": 0.01},
    {"pcan_enable": True, "pcan_strength": 0.7, "pcan_offset": 20.0, "pcan_gain_bits": 18},
    {"filterbank_lower_band_limit": 300.0, "filterbank_upper_band_limit": 4000.0, "filterbank_n_channels": 20},
])
def test_other_settings_match_tensorflow_microfrontend(speech_stream, changes, native):
    op = _microfrontend_op()
    s = dataclasses.replace(FrontendSettings(window_size_ms=25, window_step_ms=10, filterbank_n_channels=40,
                                             noise_reduction_enable=True), **changes)
    want = op(tf.constant(speech_stream), sample_rate=16000, window_size=25, window_step=10,
              num_channels=s.filterbank_n_channels, upper_band_limit=s.filterbank_upper_band_limit,
              lower_band_limit=s.filterbank_lower_band_limit, smoothing_bits=s.noise_reduction_smoothing_bits,
              even_smoothing=s.noise_reduction_even_smoothing, odd_smoothing=s.noise_reduction_odd_smoothing,
              min_signal_remaining=s.noise_reduction_min_signal_remaining, enable_pcan=s.pcan_enable,
              pcan_strength=s.pcan_strength, pcan_offset=s.pcan_offset, gain_bits=s.pcan_gain_bits,
              enable_log=s.log_scale_enable, scale_shift=s.log_scale_shift, out_scale=1,
              out_type=tf.uint16).numpy()
    np.testing.assert_array_equal(compute_features(speech_stream, s, native=native), want)
