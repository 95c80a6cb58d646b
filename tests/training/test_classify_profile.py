"""`keywire classify` (live view on a real pty, lines otherwise) and `keywire profile`,
through the real CLI with the bundled speech12 model and the bundled spoken-keyword WAV."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from keywire.training.bundled import model_path, sample_path

from tests.fixtures.paths import REPO

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _agent_detections() -> list[tuple[str, int]]:
    r = subprocess.run([sys.executable, "-m", "keywire.agent.cli", "run", "--model", str(model_path("speech12")),
                        "--source", f"file:{sample_path()}", "--no-realtime"], capture_output=True, text=True,
                       timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return [(d["keyword"], d["time_ms"]) for d in map(json.loads, r.stdout.splitlines())]


def test_classify_lines_match_the_agent(keywire_cli) -> None:
    r = keywire_cli("classify", "--model", "speech12", "--source", f"file:{sample_path()}", "--no-realtime",
                    "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    got = [(d["keyword"], d["time_ms"]) for d in map(json.loads, r.stdout.splitlines())]
    assert got == _agent_detections()  # the same pipeline as the device
    assert len(got) >= 8 and {k for k, _ in got} <= set(KEYWORDS)  # the sample speaks each keyword once
    r = keywire_cli("classify", "-m", "speech12", "--source", f"file:{sample_path()}", "--no-realtime",
                    "--no-live", "--threshold", "255", timeout=120)
    assert r.returncode == 0 and r.stdout == "" and "0 detections in 21." in r.stderr
    r = keywire_cli("classify", "-m", "speech12", "--source", "file:/nonexistent.wav", "--no-realtime", timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def _run_on_pty(args: list[str], timeout: float = 120) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm-256color")
    p = subprocess.Popen([sys.executable, "-m", "keywire.host.cli", *args], stdin=slave, stdout=slave,
                         stderr=slave, cwd=REPO, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(10), b"".join(chunks).decode(errors="replace")


def test_classify_live_view_on_a_terminal() -> None:
    rc, screen = _run_on_pty(["classify", "-m", "speech12", "--source", f"file:{sample_path()}", "--no-realtime"])
    assert rc == 0, screen[-2000:]
    assert "threshold" in screen and "last detections:" in screen and "█" in screen
    for kw in KEYWORDS + ["_unknown_", "_silence_"]:
        assert kw in screen
    n = len(_agent_detections())
    assert f"{n} detections in" in screen and "\x1b[" in screen  # redrawn in place, with colours


def test_profile_reports_latency_arena_macs_and_m33_estimate(keywire_cli) -> None:
    r = keywire_cli("profile", "speech12", "--runs", "50", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    from keywire.host.summary import summarize

    s = summarize(model_path("speech12"))
    assert p["macs"] == s.total_macs > 10_000 and p["peak_activation_bytes"] == s.peak_activation_bytes
    assert p["arena_estimate_bytes"] > p["peak_activation_bytes"]
    assert sum(p["ops"].values()) == len(s.layers) and set(p["ops"]) == {x.op for x in s.layers}
    assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p90"] <= p["latency_ms"]["p99"] <= p["latency_ms"]["max"]
    assert p["m33_ms_estimate"] == pytest.approx(p["macs"] / (0.5 * 78e6) * 1000)
    assert "MAC per cycle" in p["assumption"] and 0 < p["inferences_per_s"] <= 100
    assert p["step_macs"] == s.step_model["macs"] and 0 < p["step_macs"] < p["macs"] / 10  # speech12's step form
    assert 0 < p["step_latency_ms"]["p50"] <= p["step_latency_ms"]["max"]
    r = keywire_cli("profile", "speech12", "--runs", "20", timeout=120)
    assert r.returncode == 0 and "Cortex-M33 @ 78 MHz" in r.stdout and "p50/p90/p99" in r.stdout
    assert "one step (new embedding)" in r.stdout
    r = keywire_cli("profile", "on_off", "--runs", "5", "--json", timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["step_macs"] is None
    r = keywire_cli("profile", "speech12", "--runs", "0", timeout=60)
    assert r.returncode == 2 and "--runs must be at least 1" in r.stderr
