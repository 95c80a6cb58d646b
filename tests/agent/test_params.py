"""SL_PARAMSv1: MLTK's typing rules, round trips, and real MLTK models when available."""
from __future__ import annotations

import pytest

from keywire.protocol import sl_params as P
from keywire.protocol.errors import ModelError, ParamsError
from tests.fixtures.paths import shared_path


def test_round_trip_keeps_order_and_values():
    d = {"name": "m", "version": 3, "classes": ["on", "off", "_unknown_"], "neg": -5,
         "big": 70000, "f": 0.25, "zero": 0.0, "flag": True, "ints": [1, -2, 3],
         "floats": [0.5, 1.5], "blob": b"\x00\x01", "huge": 1 << 40}
    out = P.decode_params(P.encode_params(d))
    assert list(out) == list(d)
    assert out == d


def test_types_follow_mltk_writer():
    assert P._tag_for(5) == P.UINT8 and P._tag_for(300) == P.UINT16 and P._tag_for(70000) == P.UINT32
    assert P._tag_for(-1) == P.INT8 and P._tag_for(-300) == P.INT16
    assert P._tag_for(0.5) == P.FLOAT32
    assert P._tag_for(0.0) == P.FLOAT64 and P._tag_for(-0.5) == P.FLOAT64
    assert P._tag_for(["a"]) == P.STRING_LIST


def test_unsupported_value_is_named():
    with pytest.raises(ParamsError, match="unsupported parameter value"):
        P.encode_params({"x": object()})


def test_not_tflite_is_rejected():
    with pytest.raises(ModelError, match="not a TFLite model"):
        P.read_params(b"hello world, not a model")


def test_reads_real_mltk_models_and_rewrites_them():
    path = shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite")
    data = path.read_bytes()
    p = P.read_params(data)
    assert p["classes"] == ["on", "off", "_unknown_"]
    assert p["fe.filterbank_n_channels"] == 104 and p["detection_threshold_list"] == [242, 242, 255]
    new = P.merge_params(data, {"detection_threshold_list": [200, 210, 255], "note": "x"})
    q = P.read_params(new)
    assert q["detection_threshold_list"] == [200, 210, 255] and q["note"] == "x"
    assert list(q)[: len(p)] == list(p)


def test_write_params_on_generated_model(tiny_tflite):
    data = tiny_tflite.read_bytes()
    out = P.write_params(data, {"classes": ["a", "b"], "fe.sample_rate_hz": 16000})
    assert P.read_params(out) == {"classes": ["a", "b"], "fe.sample_rate_hz": 16000}
    out2 = P.write_params(out, {"classes": ["c"]})
    assert P.read_params(out2) == {"classes": ["c"]}


def test_frontend_sizes_are_bounded_before_anything_is_allocated():
    from keywire.protocol.frontend_settings import FrontendSettings

    for key, value in (("fe.filterbank_n_channels", 10 ** 9), ("fe.sample_length_ms", 10 ** 7),
                       ("fe.fft_length", 1 << 30), ("fe.log_scale_shift", 64)):
        with pytest.raises(ParamsError, match=f"{key} = {value} is out of range"):
            FrontendSettings.from_params({key: value})
