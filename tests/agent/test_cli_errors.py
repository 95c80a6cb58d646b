"""`keywire-agent`: every bad option or config value is one line on stderr and an exit code
from the one table (keywire.protocol.errors.ExitCode); --debug shows the traceback instead."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keywire.protocol.errors import ExitCode
from keywire.training.bundled import model_path

MODEL = str(model_path("on_off"))


def agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.agent.cli", *args], capture_output=True, text=True,
                          timeout=60)


def one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert r.returncode == code, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("keywire-agent"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.parametrize("option, value, words", [
    ("--window-ms", "0", ("average_window_duration_ms = '0' is out of range 10..60000",)),
    ("--latency-ms", "1e12", ("latency_ms = '1e12' must be an integer in 10..2000",)),
    ("--minimum-count", "1000000000", ("minimum_count = '1000000000' is out of range 0..50",)),
    ("--threshold", "256", ("detection_threshold = '256' is out of range 0..255",)),
    ("--threshold-list", "200,abc", ("detection_threshold_list = 'abc' must be an integer in 0..255",)),
    ("--suppression-ms", "-1", ("suppression_ms = '-1' is out of range 0..60000",)),
])
def test_detection_options_obey_the_table(option, value, words):
    one_line(agent("run", "--model", MODEL, "--source", "silence", option, value), ExitCode.CONFIG, *words)


def test_config_values_of_the_wrong_type_or_range(tmp_path: Path):
    cfg = tmp_path / "agent.toml"
    for text, words in (
        ('chunk_ms = "abc"\n', ("chunk_ms must be an integer", "'abc'")),
        ('[mqtt]\ngroups = "kitchen"\n', ("[mqtt] groups must be a list of a string",)),
        ('[led]\nblink_ms = [1]\n', ("[led] blink_ms must be an integer",)),
        ('[detection]\nwindow_ms = "x"\n', ("average_window_duration_ms = 'x' must be an integer",)),
        ('[detection]\nsuppression_ms = 9223372036854775807\n', ("suppression_ms", "out of range 0..60000")),
        ('[detection]\ndetection_threshold_list = []\n', ("detection_threshold_list", "1..256 values")),
        ('detection = 3\n', ("[detection] must be a table",)),
        ('chunk_ms = 1000000000\n', ("chunk_ms = 1000000000 is out of range 1..10000",)),
        ('[mqtt]\nkeepalive_s = 0\n', ("[mqtt] keepalive_s = 0 is out of range 1..65535",)),
        ('embeddings_per_call = 17\n', ("embeddings_per_call = 17 is out of range 1..16",)),
    ):
        cfg.write_text(f'model = "{MODEL}"\nsource = "silence"\n' + text)
        one_line(agent("run", "--config", str(cfg)), ExitCode.CONFIG, *words)


def test_embeddings_per_call_option():
    one_line(agent("run", "--model", MODEL, "--source", "silence", "--embeddings-per-call", "0"),
             ExitCode.CONFIG, "embeddings_per_call = 0 is out of range 1..16")
    from keywire.agent.config import build_config

    assert build_config({"model": MODEL}, {}).embeddings_per_call == 4
    assert build_config({"model": MODEL, "embeddings_per_call": 2}, {"embeddings_per_call": 1}).embeddings_per_call == 1


def test_config_accepts_mltk_names_and_cli_spellings(tmp_path: Path):
    from keywire.agent.config import build_config

    cfg = build_config({"model": MODEL, "detection": {"window_ms": 500, "latency_ms": 200}},
                       {"detection.detection_threshold": 90})
    assert (cfg.detection.average_window_duration_ms, cfg.detection.latency_ms,
            cfg.detection.detection_threshold) == (500, 200, 90)


@pytest.mark.parametrize("device_id", ["dev1\n", "dev\x1b[2J", "a b", ""])
def test_device_id_with_control_characters_is_refused(device_id):
    r = agent("run", "--model", MODEL, "--source", "silence", "--device-id", device_id)
    one_line(r, ExitCode.CONFIG, "invalid device id")


def test_state_dir_that_is_a_file(tmp_path: Path):
    f = tmp_path / "state"
    f.write_text("not a directory")
    one_line(agent("run", "--model", MODEL, "--source", "silence", "--state-dir", str(f)), ExitCode.CONFIG,
             f"state dir {f} is not a directory")


def test_unreadable_config_and_debug_traceback(tmp_path: Path):
    one_line(agent("run", "--config", str(tmp_path)), ExitCode.CONFIG, "is a directory")
    r = agent("--debug", "run", "--config", str(tmp_path))
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_config_threshold_list_for_another_model_is_left_out(tmp_path: Path):
    """A threshold list written for a 12-class model does not stop an agent running a 4-class
    one: one warning, the model's own thresholds, detections as without the list."""
    sample = str(Path(__file__).resolve().parents[2] / "training" / "samples" / "sample.wav")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'model = "{MODEL}"\nsource = "file:{sample}"\nrealtime = false\n'
                   "[detection]\ndetection_threshold_list = [" + ", ".join(["90"] * 12) + "]\n")
    r = agent("run", "--config", str(cfg))
    plain = agent("run", "--model", MODEL, "--source", f"file:{sample}", "--no-realtime")
    assert r.returncode == 0 and plain.returncode == 0, r.stderr
    assert r.stderr.count("detection_threshold_list override has 12 values for 4 classes: using the model's "
                          "own thresholds") == 1, r.stderr
    keywords = [json.loads(x)["keyword"] for x in r.stdout.splitlines()]
    assert keywords == [json.loads(x)["keyword"] for x in plain.stdout.splitlines()]
