"""`keywire-agent` CLI contract edges: a model the runtime cannot allocate, the TFLite logger's
INFO line, boolean environment variables, empty items in --threshold-list."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keywire.protocol.errors import ExitCode
from keywire.training.bundled import model_path
from tests.fixtures.mutated_tflite import with_huge_input

MODEL = str(model_path("on_off"))


def agent(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.agent.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_huge_declared_input_is_one_line_model_error(tmp_path: Path):
    huge = with_huge_input(Path(MODEL), tmp_path / "huge.tflite")
    r = agent("run", "--model", str(huge), "--source", "silence:0.2", "--no-realtime")
    assert r.returncode == ExitCode.MODEL, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("keywire-agent: error: the TFLite runtime cannot load this model:"), r.stderr


def test_no_tflite_info_line_without_debug():
    r = agent("run", "--model", MODEL, "--source", "silence:0.2", "--no-realtime", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not [line for line in r.stderr.splitlines() if line.startswith("INFO:")], r.stderr


def test_runtime_errors_written_to_stderr_still_show(tmp_path: Path):
    """Only the logger's INFO lines are hidden: the model error still reaches stderr."""
    bad = tmp_path / "bad.tflite"
    data = bytearray(Path(MODEL).read_bytes())
    data[200:4000] = bytes(3800)
    bad.write_bytes(bytes(data))
    r = agent("run", "--model", str(bad), "--source", "silence:0.2", "--no-realtime")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("keywire-agent: error:"), r.stderr


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_bad_boolean_environment_variable(value: str):
    env = dict(os.environ, KEYWIRE_QUIET=value)
    r = agent("run", "--model", MODEL, "--source", "silence:0.2", "--no-realtime", env=env)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert r.stderr.count("\n") == 1 and "KEYWIRE_QUIET" in r.stderr and "not a boolean" in r.stderr, r.stderr


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", "0", "false", "no", "off"])
def test_good_boolean_environment_variable(value: str):
    env = dict(os.environ, KEYWIRE_QUIET=value)
    r = agent("run", "--model", MODEL, "--source", "silence:0.2", "--no-realtime", env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("value", ["1,,2", "1,2,", ",1", " , "])
def test_threshold_list_with_an_empty_item(value: str):
    r = agent("run", "--model", MODEL, "--source", "silence:0.2", "--threshold-list", value)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert r.stderr.count("\n") == 1 and "detection_threshold_list" in r.stderr, r.stderr
