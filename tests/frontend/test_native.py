"""The compiled frontend (keywire.agent._cfrontend) against the numpy reference: identical
features for any settings, audio and chunking. These fail (not skip) when the extension was
not built: the build is part of the product."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from keywire.agent import frontend as F
from keywire.protocol.errors import ParamsError
from keywire.agent.frontend import Frontend, compute_features, compute_features_batch, native_available
from keywire.agent.frontend.native import native_frontend
from keywire.protocol.frontend_settings import FrontendSettings

from .conftest import MFCC, MICRO_SPEECH, MOBILENETV2, ON_OFF_V3

SETTINGS = {
    "on_off_v3": ON_OFF_V3,
    "micro_speech": MICRO_SPEECH,
    "mobilenetv2": MOBILENETV2,
    "dc_off": dataclasses.replace(ON_OFF_V3, dc_notch_filter_enable=False),
    "nr_off": dataclasses.replace(MICRO_SPEECH, noise_reduction_enable=False, pcan_enable=False),
    "pcan_off": dataclasses.replace(MICRO_SPEECH, pcan_enable=False),
    "dc_pcan": dataclasses.replace(MICRO_SPEECH, dc_notch_filter_enable=True),
    "log_off": dataclasses.replace(MICRO_SPEECH, log_scale_enable=False),
    "w25_s10_32ch": FrontendSettings(window_size_ms=25, window_step_ms=10, filterbank_n_channels=32,
                                     noise_reduction_enable=True, pcan_enable=True),
    "w64_s32_64ch": FrontendSettings(window_size_ms=64, window_step_ms=32, filterbank_n_channels=64,
                                     noise_reduction_enable=True, noise_reduction_smoothing_bits=5),
    "w20_s20_16ch_shift11": FrontendSettings(window_size_ms=20, window_step_ms=20, filterbank_n_channels=16,
                                             noise_reduction_enable=True, log_scale_shift=11),
    "8k_w30_s10": FrontendSettings(sample_rate_hz=8000, window_size_ms=30, window_step_ms=10,
                                   filterbank_n_channels=40, filterbank_upper_band_limit=3800.0,
                                   noise_reduction_enable=True, pcan_enable=True, dc_notch_filter_enable=True),
    "8k_w32_s16_24ch": FrontendSettings(sample_rate_hz=8000, window_size_ms=32, window_step_ms=16,
                                        filterbank_n_channels=24, filterbank_upper_band_limit=3900.0,
                                        noise_reduction_enable=True),
    "8k_tiny_window": FrontendSettings(sample_rate_hz=8000, window_size_ms=1, window_step_ms=1,
                                       filterbank_n_channels=2, filterbank_lower_band_limit=1000.0,
                                       filterbank_upper_band_limit=3900.0),
}


def _signals(speech: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    n = np.arange(24000)
    return {
        "speech": speech,
        "white_loud": rng.integers(-32768, 32768, 24000).astype(np.int16),
        "brown": np.clip(np.cumsum(rng.standard_normal(24000)) * 80, -32768, 32767).astype(np.int16),
        "quiet": rng.integers(-3, 4, 24000).astype(np.int16),
        "square_clipped": np.where(np.sin(n * 2 * np.pi * 440 / 16000) >= 0, 32767, -32768).astype(np.int16),
        "dc_minimum": np.full(8000, -32768, np.int16),
    }


def test_the_extension_is_built():
    """`pip install -e .` compiles agent/native/frontend.c; without it the agent falls back to numpy."""
    assert native_available(), "keywire.agent._cfrontend did not build or does not import"
    assert Frontend(MICRO_SPEECH).native                      # auto picks C
    assert not Frontend(MICRO_SPEECH, native=False).native
    assert not Frontend(MFCC).native and not Frontend(MFCC, native=True).native   # MFCC stays numpy


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_c_equals_numpy_on_speech_and_noise(speech_stream, name):
    s = SETTINGS[name]
    audio = speech_stream if s.sample_rate_hz == 16000 else speech_stream[::2]
    peak = 0
    for sig_name, x in _signals(audio).items():
        want = compute_features(x, s, native=False)
        peak = max(peak, int(want.max()) if want.size else 0)
        got = compute_features(x, s, native=True)
        assert got.dtype == np.uint16 and got.shape == want.shape, sig_name
        diff = np.argwhere(got != want)
        assert len(diff) == 0, f"{name}/{sig_name}: {len(diff)} values differ, first at {diff[:3].tolist()}"
    assert peak > 300 or name == "8k_tiny_window"      # real values compared, not only zeros


@pytest.mark.parametrize("name", ["on_off_v3", "micro_speech", "nr_off", "8k_w30_s10", "w64_s32_64ch"])
@pytest.mark.parametrize("chunk", [1, 7, 160, 480, 1600, 16000])
def test_c_streaming_any_chunk_size_equals_numpy_whole_clip(speech_stream, name, chunk):
    s = SETTINGS[name]
    x = speech_stream if s.sample_rate_hz == 16000 else speech_stream[::2]
    if chunk == 1:
        x = x[:8000]
    want = compute_features(x, s, native=False)
    fe = Frontend(s, native=True)
    got = np.concatenate([fe.process(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    np.testing.assert_array_equal(got, want)


def test_c_reset_and_state_match_numpy(speech_stream):
    c, py = Frontend(ON_OFF_V3, native=True), Frontend(ON_OFF_V3, native=False)
    for part in (speech_stream[:1234], speech_stream[1234:30000], speech_stream):   # state carries over
        np.testing.assert_array_equal(c.process(part), py.process(part))
    c.reset()
    py.reset()
    np.testing.assert_array_equal(c.process(speech_stream[:5000]), py.process(speech_stream[:5000]))
    c.reset()
    np.testing.assert_array_equal(c.process(speech_stream), compute_features(speech_stream, ON_OFF_V3, native=False))


def test_c_takes_strided_and_other_integer_inputs(speech_stream):
    want = compute_features(speech_stream[::2], MICRO_SPEECH, native=False)
    np.testing.assert_array_equal(compute_features(speech_stream[::2], MICRO_SPEECH, native=True), want)
    np.testing.assert_array_equal(compute_features(speech_stream[::2].astype(np.int32), MICRO_SPEECH,
                                                   native=True), want)
    np.testing.assert_array_equal(compute_features(speech_stream[::2, None], MICRO_SPEECH, native=True), want)


@pytest.mark.parametrize("name", ["on_off_v3", "micro_speech", "8k_w30_s10"])
def test_c_batch_equals_numpy_batch(speech_stream, name):
    s = SETTINGS[name]
    clips = np.stack([speech_stream[i:i + 8000] for i in range(0, len(speech_stream) - 8000, 1000)])
    np.testing.assert_array_equal(compute_features_batch(clips, s, native=True),
                                  compute_features_batch(clips, s, native=False))
    # every clip from fresh state, also after the C state object was used
    np.testing.assert_array_equal(compute_features_batch(clips[::-1], s, native=True)[::-1],
                                  compute_features_batch(clips, s, native=False))


def test_random_settings_c_equals_numpy():
    """Any fe.* combination the frontend accepts gives the same features in C and numpy."""
    rng = np.random.default_rng(21)
    ran = 0
    for _ in range(80):
        rate = int(rng.choice([8000, 11025, 16000, 22050]))
        pcan = bool(rng.integers(2))
        s = FrontendSettings(
            sample_rate_hz=rate, window_size_ms=int(rng.integers(1, 70)), window_step_ms=int(rng.integers(1, 50)),
            filterbank_n_channels=int(rng.integers(1, 120)),
            filterbank_lower_band_limit=float(rng.uniform(0, 1500)),
            filterbank_upper_band_limit=float(rng.uniform(2000, rate / 2 - 1)),
            noise_reduction_enable=pcan or bool(rng.integers(2)), pcan_enable=pcan,
            noise_reduction_smoothing_bits=int(rng.integers(0, 17)),
            noise_reduction_even_smoothing=float(rng.uniform(0, 1)),
            noise_reduction_odd_smoothing=float(rng.uniform(0, 1)),
            noise_reduction_min_signal_remaining=float(rng.uniform(0, 1)),
            pcan_strength=float(rng.uniform(0.1, 1.5)), pcan_offset=float(rng.uniform(1, 200)),
            pcan_gain_bits=int(rng.integers(15, 32)), log_scale_enable=bool(rng.integers(4)),
            log_scale_shift=int(rng.integers(0, 17)), dc_notch_filter_enable=bool(rng.integers(2)),
            dc_notch_filter_coefficient=float(rng.uniform(-0.99, 0.99)))
        try:
            F.validate_settings(s)
        except ParamsError:
            continue
        x = (np.cumsum(rng.standard_normal(rate // 2)) * rng.uniform(1, 500)).clip(-32768, 32767).astype(np.int16)
        want = compute_features(x, s, native=False)
        fe = Frontend(s, native=True)
        got = np.concatenate([fe.process(x[i:i + 333]) for i in range(0, len(x), 333)])
        np.testing.assert_array_equal(got, want, err_msg=str(s))
        ran += 1
    assert ran > 30


def test_c_rejects_wrong_buffers():
    c = native_frontend(MICRO_SPEECH)
    with pytest.raises(TypeError):
        c.process(np.zeros(100, np.float32), np.zeros((0, 40), np.uint16))
    with pytest.raises(TypeError):
        c.process(np.zeros(100, np.int16), np.zeros((1, 40), np.int16))
    with pytest.raises(ValueError):
        c.process(np.zeros(480, np.int16), np.zeros((0, 40), np.uint16))   # room for 0 of 1 frame
    assert c.process(np.zeros(480, np.int16), np.zeros((1, 40), np.uint16)) == 1


def test_c_state_refuses_concurrent_use_instead_of_corrupting_memory(speech_stream):
    """process() runs without the GIL; a second thread on the same state gets an error."""
    import threading

    fe = Frontend(MICRO_SPEECH, native=True)
    long = np.tile(speech_stream, 20)
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(5):
                fe.process(long)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("in use" in str(e) for e in errors)
    fe.reset()
    np.testing.assert_array_equal(fe.process(speech_stream), compute_features(speech_stream, MICRO_SPEECH,
                                                                              native=False))
