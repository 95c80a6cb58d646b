"""Agent configuration: TOML + CLI overrides into frozen dataclasses, typos named."""
from __future__ import annotations

import pytest

from keywire.agent.config import build_config, load_config_file
from keywire.protocol.detection import DetectionOverrides, DetectionSettings
from keywire.protocol.errors import ConfigError


def test_cli_overrides_file(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('model = "a.tflite"\nsource = "silence"\n[detection]\nthreshold = 150\n'
                 '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\ntrusted_keys = ["k.pub"]\n')
    cfg = build_config(load_config_file(f), {"source": "stdin", "detection.average_window_duration_ms": 500,
                                                 "model": None})
    assert cfg.model == "a.tflite" and cfg.source == "stdin"
    assert cfg.detection == DetectionOverrides(detection_threshold=150, average_window_duration_ms=500)
    assert cfg.mqtt.trusted_keys == ("k.pub",)


def test_typo_is_named(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text('model = "a.tflite"\n[detection]\nthreshhold = 1\n')
    with pytest.raises(ConfigError, match="threshhold"):
        build_config(load_config_file(f), {})


def test_bad_toml_is_named(tmp_path):
    f = tmp_path / "agent.toml"
    f.write_text("model = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config_file(f)


def test_single_threshold_replaces_model_list():
    base = DetectionSettings(detection_threshold_list=(242, 242, 255))
    s = DetectionOverrides(detection_threshold=200).apply(base)
    assert s.detection_threshold_list is None and s.threshold_for(2) == 200
