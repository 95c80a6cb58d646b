"""Detections reach the journal with structured fields (KEYWORD, SCORE, MODEL, EVENT_ID).

journald is played by a receiver bound to /run/systemd/journal/socket inside a private mount
namespace, so the agent's real systemd-python client writes to it unchanged."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..fixtures.speech import stream_of_words, write_wav
from .agent_process import agent_executable

RECEIVER = Path(__file__).with_name("journal_receiver.py")


def run_under_journal(tmp_path: Path, args: list[str]) -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) not installed")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /run"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    out = tmp_path / "journal.json"
    cmd = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$@"', "sh",
           sys.executable, str(RECEIVER), str(out), agent_executable(), *args]
    subprocess.run(cmd, check=True, timeout=120)
    return json.loads(out.read_text())


def test_detections_go_to_the_journal_with_fields(tmp_path, loudness_model):
    samples, truth = stream_of_words(["yes", "seven", "hello"], voices=["en-us"], gap_s=0.8)
    wav = write_wav(tmp_path / "speech.wav", samples)
    res = run_under_journal(tmp_path, ["run", "--model", str(loudness_model), "--source", f"file:{wav}",
                                       "--no-realtime", "--threshold", "100"])
    assert res["rc"] == 0, res["stderr"]
    events = [json.loads(line) for line in res["stdout"].splitlines()]
    assert len(events) >= len(truth)
    detections = [e for e in res["entries"] if e.get("KEYWORD")]
    assert [d["EVENT_ID"] for d in detections] == [e["event_id"] for e in events]
    for d, e in zip(detections, events):
        assert d["KEYWORD"] == "speech" and d["MODEL"] == "loudness" and d["MODEL_VERSION"] == "1"
        assert int(d["SCORE"]) == e["score"] > 100
        assert d["MODEL_SHA256"] == e["model_sha256"]
        assert d["PRIORITY"] == "6" and d["SYSLOG_IDENTIFIER"] == "keywire-agent"
        assert "detected speech" in d["MESSAGE"]
    # Ordinary log records go to the journal too, not to stderr (where only LiteRT's own C++ notice remains).
    assert any("audio source" in e.get("MESSAGE", "") and e.get("LOGGER") for e in res["entries"])
    assert "keywire" not in res["stderr"]
