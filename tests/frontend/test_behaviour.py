"""Frontend behaviour on generated signals, the int8 mappings and settings validation
(no ../shared needed)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from keywire.protocol.errors import KeywireError, ParamsError
from keywire.agent.frontend import (FloatQuantizer, Frontend, WindowQuantizer, compute_features,
                                    dynamic_scale_range, to_model_input, to_model_input_mfcc,
                                    validate_settings)
from keywire.protocol.frontend_settings import FrontendSettings

from .conftest import MFCC, MICRO_SPEECH, ON_OFF_V3


def _tone(freq: float, dbfs: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(np.sin(2 * np.pi * freq * t) * 32767 * 10 ** (dbfs / 20)).astype(np.int16)


def test_digital_silence_is_all_zero():
    for s in (ON_OFF_V3, MICRO_SPEECH):
        out = compute_features(np.zeros(16000, np.int16), s)
        assert out.shape == (s.n_frames, s.n_channels) and not out.any()


def test_tone_peaks_in_its_mel_channel_and_grows_with_level():
    s = dataclasses.replace(ON_OFF_V3, noise_reduction_enable=False, dc_notch_filter_enable=False)
    peaks = []
    for freq in (500.0, 1000.0, 3000.0):
        out = compute_features(_tone(freq, -12), s)
        peaks.append(int(np.argmax(out[-1])))
    assert peaks[0] < peaks[1] < peaks[2]
    quiet = compute_features(_tone(1000.0, -40), s)[-1].max()
    loud = compute_features(_tone(1000.0, -6), s)[-1].max()
    # log scale: 34 dB more is ln(10^(34/20)) * 2^6 ~ 250 uint16 units more
    assert 200 < int(loud) - int(quiet) < 300


def test_noise_reduction_suppresses_stationary_noise():
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(32000) * 1000).astype(np.int16)
    with_nr = compute_features(noise, ON_OFF_V3)
    without = compute_features(noise, dataclasses.replace(ON_OFF_V3, noise_reduction_enable=False))
    assert with_nr[-20:].mean() < without[-20:].mean() - 20


def test_dc_notch_removes_a_dc_offset():
    tone = _tone(1000.0, -20)
    offset = np.clip(tone.astype(np.int32) + 8000, -32768, 32767).astype(np.int16)
    s = dataclasses.replace(ON_OFF_V3, noise_reduction_enable=False)
    no_notch = dataclasses.replace(s, dc_notch_filter_enable=False)
    low = slice(0, 3)  # channels nearest DC
    assert compute_features(offset, no_notch)[10:, low].mean() > compute_features(tone, no_notch)[10:, low].mean() + 50
    np.testing.assert_allclose(compute_features(offset, s)[10:, low].mean(),
                               compute_features(tone, s)[10:, low].mean(), atol=15)


def test_static_int8_mapping():
    u = np.array([[0, 1, 332, 333, 334, 665, 666, 1000, 65535]], dtype=np.uint16)
    want = [(int(v) * 256 + 333) // 666 - 128 for v in u[0]]
    want = np.clip(want, -128, 127)
    np.testing.assert_array_equal(to_model_input(u, MICRO_SPEECH)[0], want)
    assert to_model_input(u, MICRO_SPEECH)[0, 0] == -128 and to_model_input(u, MICRO_SPEECH)[0, -1] == 127


def test_dynamic_int8_mapping():
    assert dynamic_scale_range(ON_OFF_V3) == 294          # int(40 * 64 * ln(10)/20)
    u = np.array([[1000, 1000 - 294, 1000 - 147, 0, 999]], dtype=np.uint16)
    q = to_model_input(u, ON_OFF_V3)[0]
    assert q.tolist() == [127, -128, 147 * 255 // 294 - 128, -128, 293 * 255 // 294 - 128]
    # below the range: negative before truncation toward zero, then clamped
    quiet = np.array([[100, 50]], dtype=np.uint16)      # max - R < 0 -> min 0, span 100
    assert to_model_input(quiet, ON_OFF_V3)[0].tolist() == [127, 50 * 255 // 100 - 128]
    assert to_model_input(np.zeros((3, 4), np.uint16), ON_OFF_V3).tolist() == [[-128] * 4] * 3


def test_mfcc_output_and_quantisation(speech_stream):
    out = Frontend(MFCC).process(speech_stream)
    assert out.dtype == np.float32 and out.shape[1] == 13 and np.isfinite(out).all()
    q = to_model_input_mfcc(np.array([-1.0, -0.25, 0.25, 0.5, 100.0]), scale=0.5, zero_point=3)
    assert q.dtype == np.int8 and q.tolist() == [1, 2, 4, 4, 127]   # half away from zero: 0.5 -> 1
    with pytest.raises(ParamsError):
        to_model_input_mfcc(np.zeros(3), scale=0.0, zero_point=0)


def _quantised(v: float, scale: float, zero_point: int) -> int:
    """One value as TFLite's quantize defines it, written out per value (the test's oracle)."""
    q = math.floor(abs(float(v)) / scale + 0.5)            # round half away from zero
    return max(-128, min(127, int(math.copysign(q, v)) + zero_point))


def test_float_quantizer_gives_the_same_values_into_its_own_buffer():
    rng = np.random.default_rng(5)
    quantize = FloatQuantizer((1, 8, 6), scale=0.5, zero_point=-18)
    for spread in (0.1, 1.0, 10.0, 1000.0):
        x = (rng.standard_normal((8, 6)) * spread).astype(np.float32)
        x[0] = (np.arange(6) - 3) * np.float32(0.25)            # exact halves of a step
        q = quantize(x)
        assert q.shape == (1, 8, 6) and q.dtype == np.int8
        assert q.ravel().tolist() == [_quantised(v, 0.5, -18) for v in x.ravel()]
    assert quantize(np.zeros((8, 6), np.float32)) is q                  # one buffer, reused
    with pytest.raises(ParamsError):
        FloatQuantizer((2,), scale=0.0, zero_point=0)


def test_window_quantizer_quantises_new_frames_into_the_whole_window_s_values():
    """A window moving over a stream of float frames, quantised frame by frame, holds the
    values of the whole window quantised afresh, whatever the number of new frames."""
    rng = np.random.default_rng(8)
    stream = (rng.standard_normal((200, 6)) * 3).astype(np.float32)
    stream[::7] = np.float32(0.25) * (np.arange(6) - 3)                  # exact halves of a step
    window = WindowQuantizer((1, 8, 6), scale=0.5, zero_point=-18)
    whole = FloatQuantizer((1, 8, 6), scale=0.5, zero_point=-18)
    end = 8
    for new in [0, 3, 1, 1, 2, 0, 8, 13, 1, 5, 7, 2] * 4:
        end += new
        frames = stream[end - 8:end]
        q = window.update(frames, new)
        assert q.shape == (1, 8, 6) and q.tolist() == whole(frames).tolist()
    window.reset()                                                         # all of it next time
    assert window.update(stream[:8], 0).tolist() == whole(stream[:8]).tolist()


@pytest.mark.parametrize("changes,needle", [
    ({"pcan_enable": True, "noise_reduction_enable": False}, "fe.pcan_enable"),
    ({"fft_length": 1024}, "fe.fft_length"),
    ({"filterbank_upper_band_limit": 9000.0}, "Nyquist"),
    ({"window_step_ms": 40}, "fe.window_step_ms"),
    ({"noise_reduction_even_smoothing": 1.5}, "fe.noise_reduction_even_smoothing"),
    ({"frontend_type": "spectrogram"}, "fe.frontend_type"),
    ({"frontend_type": "mfcc", "mfcc_n_coefficients": 41}, "fe.mfcc_n_coefficients"),
    ({"window_size_ms": 0}, "fe.window_size_ms"),
    ({"dc_notch_filter_coefficient": 1.0}, "fe.dc_notch_filter_coefficient"),
    ({"filterbank_n_channels": 0}, "fe.filterbank_n_channels"),
])
def test_invalid_settings_raise_one_named_error(changes, needle):
    bad = dataclasses.replace(MICRO_SPEECH, **changes)
    with pytest.raises(ParamsError) as info:
        Frontend(bad)
    assert isinstance(info.value, KeywireError)
    assert needle in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ParamsError):
        validate_settings(bad)


def test_valid_settings_pass_validation():
    for s in (ON_OFF_V3, MICRO_SPEECH, MFCC, FrontendSettings(), FrontendSettings(sample_rate_hz=8000,
                                                                                  filterbank_upper_band_limit=3900.0)):
        validate_settings(s)


@pytest.mark.parametrize("bad,needle", [
    (np.zeros(100, np.float32), "float32"),
    (np.zeros((100, 2), np.int16), "mono"),
    (np.array([0, 40000], np.int32), "outside int16"),
])
def test_bad_samples_raise_audio_error(bad, needle):
    from keywire.protocol.errors import AudioError
    with pytest.raises(AudioError, match=needle):
        Frontend(ON_OFF_V3).process(bad)
    with pytest.raises(AudioError):
        compute_features(bad, MICRO_SPEECH)


def test_other_integer_and_column_inputs_are_accepted(speech_stream):
    want = compute_features(speech_stream, ON_OFF_V3)
    np.testing.assert_array_equal(compute_features(speech_stream.astype(np.int32), ON_OFF_V3), want)
    np.testing.assert_array_equal(compute_features(speech_stream[:, None], ON_OFF_V3), want)


def test_random_settings_either_run_or_raise_params_error():
    """Any combination of fe.* values builds a working frontend or fails with one ParamsError."""
    rng = np.random.default_rng(11)
    ran = 0
    for _ in range(60):
        rate = int(rng.choice([1000, 8000, 11025, 16000, 22050, 48000]))
        kw = dict(sample_rate_hz=rate, window_size_ms=int(rng.integers(0, 70)),
                  window_step_ms=int(rng.integers(1, 50)), filterbank_n_channels=int(rng.integers(0, 140)),
                  filterbank_lower_band_limit=float(rng.uniform(0, 2000)),
                  filterbank_upper_band_limit=float(rng.uniform(200, rate / 2 + 500)),
                  noise_reduction_enable=bool(rng.integers(2)), pcan_enable=bool(rng.integers(2)),
                  log_scale_shift=int(rng.integers(0, 20)), dc_notch_filter_enable=bool(rng.integers(2)),
                  noise_reduction_smoothing_bits=int(rng.integers(0, 20)), pcan_gain_bits=int(rng.integers(1, 32)),
                  frontend_type=str(rng.choice(["microfrontend", "mfcc"])),
                  mfcc_n_coefficients=int(rng.integers(1, 60)))
        s = FrontendSettings(**kw)
        try:
            fe = Frontend(s)
        except ParamsError as exc:
            assert str(exc).startswith("fe.") and "\n" not in str(exc), str(exc)
            continue
        out = fe.process((rng.standard_normal(rate // 2) * 3000).astype(np.int16))
        assert out.shape[1] == s.n_channels and (out.dtype == np.float32 or out.dtype == np.uint16)
        ran += 1
    assert ran > 15


def _c_log_scale(x: int, shift: int) -> int:
    """Line-by-line transcription of the microfrontend's LogScaleApply for one uint32 value."""
    from keywire.agent.frontend.log import LOG_LUT as _LOG_LUT
    if x <= 1:
        return 0
    integer = x.bit_length() - 1
    frac = x - (1 << integer)
    frac = frac << (16 - integer) if integer < 16 else frac >> (integer - 16)
    base = frac >> 9
    c0, c1 = int(_LOG_LUT[base]), int(_LOG_LUT[base + 1])
    fraction = frac + c0 + (((c1 - c0) * (frac - 512 * base)) >> 16)
    loge = (45426 * ((integer << 16) + fraction) + 32768) >> 16
    return min(((((loge << shift) & 0xFFFFFFFF) + 32768) & 0xFFFFFFFF) >> 16, 0xFFFF)


@pytest.mark.parametrize("shift", [0, 6, 11, 16])
def test_log_scale_over_the_whole_uint32_range(shift):
    from keywire.agent.frontend.log import log_scale
    rng = np.random.default_rng(shift)
    powers = np.int64(1) << np.arange(32, dtype=np.int64)
    values = np.unique(np.concatenate([np.arange(0, 3000), rng.integers(0, 2**32, 5000),
                                       powers - 1, powers, powers + 1])).astype(np.int64)
    values = values[values < 2**32]
    got = log_scale(values, enable=True, shift=shift, correction_bits=0)
    want = [_c_log_scale(int(v), shift) for v in values]
    np.testing.assert_array_equal(got, want)
