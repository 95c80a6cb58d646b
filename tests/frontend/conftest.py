"""Fixtures for the frontend tests: real espeak-ng speech and the three MLTK configurations."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.protocol.frontend_settings import FrontendSettings
from tests.fixtures.speech import read_wav

# The fe.* settings of MLTK's shipped models (as in ../shared/data/frontend_vectors/*.settings.json),
# written out so the tests that need no ../shared run with the same configurations.
ON_OFF_V3 = FrontendSettings(
    window_size_ms=30, window_step_ms=10, filterbank_n_channels=104, noise_reduction_enable=True,
    noise_reduction_min_signal_remaining=0.4000000059604645, dc_notch_filter_enable=True,
    dc_notch_filter_coefficient=0.949999988079071, quantize_dynamic_scale_enable=True, fft_length=512)
MICRO_SPEECH = FrontendSettings(
    window_size_ms=30, window_step_ms=20, filterbank_n_channels=40, noise_reduction_enable=True,
    pcan_enable=True, fft_length=512)
MOBILENETV2 = FrontendSettings(
    sample_length_ms=1200, window_size_ms=30, window_step_ms=20, filterbank_n_channels=49,
    filterbank_upper_band_limit=3999.0, noise_reduction_enable=True,
    noise_reduction_min_signal_remaining=0.029999999329447746, fft_length=512)
MFCC = FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=40,
                        frontend_type="mfcc", mfcc_n_coefficients=13)


@pytest.fixture(params=[False, True], ids=["numpy", "c"])
def native(request) -> bool:
    """Both implementations of the microfrontend: numpy (the reference, and the fallback) and
    the compiled one. The C cases fail, never skip, when the extension was not built."""
    return request.param


@pytest.fixture(scope="session")
def speech_stream(speak) -> np.ndarray:
    """About 3 s of real synthesized speech (two voices) with quiet noise between words."""
    rng = np.random.default_rng(7)
    parts = []
    for text, voice in (("on", "en-us"), ("off", "en-us+f3"), ("yes", "en-gb")):
        clip, rate = read_wav(speak(text, voice=voice))
        assert rate == 16000
        parts.append((rng.standard_normal(2500) * 30).astype(np.int16))
        parts.append(clip)
    return np.concatenate(parts).astype(np.int16)
