"""Bit-exactness against MLTK 0.20.0's AudioFeatureGenerator (reference vectors in ../shared)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from keywire.agent.frontend import compute_features, compute_features_batch, to_model_input
from keywire.protocol.frontend_settings import FrontendSettings
from tests.fixtures.paths import shared_path

from .conftest import MICRO_SPEECH, MOBILENETV2, ON_OFF_V3

CASES = [
    ("micro_speech_16k", "mltk_uint16", "mltk_int8", False),
    ("mobilenetv2_16k", "mltk_uint16", "mltk_int8", False),
    ("on_off_v3_16k", "mltk_uint16", "mltk_int8", False),
    ("on_off_v3_16k", "mltk_uint16_no_dcnotch", "mltk_int8_no_dcnotch", True),
]


def _load(name: str, no_dcnotch: bool):
    data = np.load(shared_path("frontend_vectors", f"{name}.npz"))
    settings = FrontendSettings.from_params(json.loads(str(data["settings_json"])))
    if no_dcnotch:
        settings = dataclasses.replace(settings, dc_notch_filter_enable=False)
    return data, settings


@pytest.mark.parametrize("name,key_u16,key_i8,no_dcnotch", CASES)
def test_uint16_bit_exact_per_clip(name, key_u16, key_i8, no_dcnotch, native):
    data, settings = _load(name, no_dcnotch)
    for i, clip_name in enumerate(data["names"]):
        got = compute_features(data["audio_int16"][i], settings, native=native)
        want = data[key_u16][i]
        assert got.dtype == np.uint16 and got.shape == want.shape, clip_name
        diff = np.argwhere(got != want)
        assert len(diff) == 0, f"{name}/{clip_name}: {len(diff)} values differ, first at {diff[:3].tolist()}"
        np.testing.assert_array_equal(to_model_input(got, settings), data[key_i8][i],
                                      err_msg=f"{name}/{clip_name}: int8 model input")


@pytest.mark.parametrize("name,key_u16,key_i8,no_dcnotch", CASES)
def test_batch_equals_mltk(name, key_u16, key_i8, no_dcnotch, native):
    data, settings = _load(name, no_dcnotch)
    got = compute_features_batch(data["audio_int16"], settings, native=native)
    np.testing.assert_array_equal(got, data[key_u16])


@pytest.mark.parametrize("name,key_u16,key_i8,no_dcnotch", CASES)
def test_int8_model_input_bit_exact(name, key_u16, key_i8, no_dcnotch):
    data, settings = _load(name, no_dcnotch)
    for i, clip_name in enumerate(data["names"]):
        q = to_model_input(data[key_u16][i], settings)
        assert q.dtype == np.int8
        np.testing.assert_array_equal(q, data[key_i8][i], err_msg=f"{name}/{clip_name}")


@pytest.mark.parametrize("name,settings", [("on_off_v3_16k", ON_OFF_V3), ("micro_speech_16k", MICRO_SPEECH),
                                           ("mobilenetv2_16k", MOBILENETV2)])
def test_written_out_settings_match_the_vector_files(name, settings):
    """The settings the fresh-machine tests use are the models' real fe.* settings."""
    data = np.load(shared_path("frontend_vectors", f"{name}.npz"))
    real = FrontendSettings.from_params(json.loads(str(data["settings_json"])))
    for f in dataclasses.fields(FrontendSettings):
        a, b = getattr(real, f.name), getattr(settings, f.name)
        if isinstance(a, float):  # MLTK stores float32: 0.025 arrives as 0.02500000037252903
            assert np.float32(a) == np.float32(b), f.name
        else:
            assert a == b, f.name
