"""`keywire`: one place maps every expected failure to one line and an exit code from the one
table (keywire.protocol.errors.ExitCode), for every command; --debug shows the traceback."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from keywire.protocol.errors import ExitCode
from keywire.training.bundled import model_path

REPO = Path(__file__).resolve().parents[2]
MODEL = str(model_path("on_off"))
SAMPLE = str(REPO / "training" / "samples" / "sample.wav")


def keywire(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=120)


def one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if not x.startswith("INFO: ")]  # the TFLite runtime's own line
    assert len(lines) == 1 and lines[0].startswith("keywire: error: "), r.stderr
    for w in words:
        assert w in lines[0], r.stderr


def test_summarize_a_corrupt_file(tmp_path: Path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    one_line(keywire("summarize", str(bad)), ExitCode.MODEL, "bad.tflite")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(Path(MODEL).read_bytes()[:5000])
    one_line(keywire("summarize", str(cut)), ExitCode.MODEL, "cut.tflite")
    r = keywire("--debug", "summarize", str(bad))
    assert r.returncode != 0 and "Traceback" in r.stderr and "ModelError" in r.stderr


def test_unwritable_key_directory(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line(keywire("keys", "generate", str(blocker / "keys")), ExitCode.FILE, f"{blocker / 'keys'}",
             "Not a directory")


def test_features_into_a_directory_writes_inside_it(tmp_path: Path):
    out = tmp_path / "feats"
    out.mkdir()
    r = keywire("features", SAMPLE, "--model", MODEL, "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["feats"]  # nothing written next to it
    x = np.load(out / "features.npy")
    assert x.shape[0] == 1 and x.dtype == np.uint16
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line(keywire("features", SAMPLE, "--model", MODEL, "--output", str(blocker / "f.npy")), ExitCode.CONFIG,
             f"{blocker} is not a directory")


def test_fleet_command_checks_the_detection_table_before_connecting():
    r = keywire("fleet", "command", "set_detection", "--mqtt", "mqtt://127.0.0.1:1", "--fleet", "f",
                "--device", "d", "--window-ms", "0")
    one_line(r, ExitCode.CONFIG, "average_window_duration_ms = '0' is out of range 10..60000")


def test_every_exit_code_is_documented_in_the_readme():
    text = (REPO / "README.md").read_text()
    documented = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\|\s*(\d+)\s*\|\s*`?(\w+)`?\s*\|", text, re.M)}
    assert {int(c): c.name for c in ExitCode} == documented
