"""`keywire-agent devices` and quiet PortAudio start-up, through real PyAudio and ALSA.

The capture device is ALSA's `file` PCM plugin (declared in a temporary ~/.asoundrc), which
PortAudio lists and opens like any sound card.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keywire.training.bundled import model_path

AGENT = [str(Path(sys.executable).parent / "keywire-agent")]
NOISE = ("ALSA lib", "jack server", "Cannot connect to server", "JackShmReadWritePtr")


@pytest.fixture()
def alsa_home(tmp_path: Path) -> dict[str, str]:
    """An environment whose ALSA configuration adds the capture PCM `kwtest` (silence from /dev/zero)."""
    (tmp_path / ".asoundrc").write_text(
        'pcm.kwtest {\n type file\n slave.pcm "null"\n file "/dev/null"\n infile "/dev/zero"\n format "raw"\n}\n')
    return dict(os.environ, HOME=str(tmp_path))


def noise_lines(stderr: str) -> list[str]:
    """ALSA/JACK diagnostics printed raw (not as keywire.audio log records)."""
    return [line for line in stderr.splitlines()
            if any(n in line for n in NOISE) and "keywire.audio:" not in line]


def test_devices_lists_the_alsa_file_plugin(alsa_home):
    r = subprocess.run(AGENT + ["devices"], env=alsa_home, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["index", "channels", "rate", "api", "name"]
    row = next(line.split() for line in rows if line.endswith(" kwtest"))
    assert row[0].rstrip("*").isdigit() and int(row[1]) > 0 and int(row[2]) >= 8000 and row[3] == "ALSA"
    assert noise_lines(r.stderr) == [], r.stderr

    j = subprocess.run(AGENT + ["devices", "--json"], env=alsa_home, capture_output=True, text=True, timeout=60)
    assert j.returncode == 0, j.stderr
    devices = [json.loads(line) for line in j.stdout.splitlines()]
    kw = next(d for d in devices if d["name"] == "kwtest")
    assert kw["index"] == int(row[0].rstrip("*")) and kw["channels"] == int(row[1])
    assert kw["default_rate"] == int(row[2]) and kw["host_api"] == "ALSA"


def test_portaudio_diagnostics_go_to_the_debug_log(alsa_home):
    """What plain PyAudio prints on this machine (no sound card, no JACK server: ~60 lines)
    is absent from `devices` and present, as log records, with --debug."""
    plain = subprocess.run([sys.executable, "-c", "import pyaudio; pyaudio.PyAudio().terminate()"],
                           env=alsa_home, capture_output=True, text=True, timeout=60)
    if not noise_lines(plain.stderr):
        pytest.skip("ALSA and JACK print nothing on this machine (sound card and JACK server present)")
    quiet = subprocess.run(AGENT + ["devices"], env=alsa_home, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and noise_lines(quiet.stderr) == [], quiet.stderr
    debug = subprocess.run(AGENT + ["--debug", "devices"], env=alsa_home, capture_output=True, text=True,
                           timeout=60)
    logged = [line for line in debug.stderr.splitlines() if "DEBUG keywire.audio:" in line]
    assert noise_lines(debug.stderr) == [] and len(logged) >= len(noise_lines(plain.stderr)) // 2, debug.stderr


def test_missing_microphone_retries_quietly(alsa_home):
    """The agent reopening a microphone that is not there logs one warning per try, nothing else."""
    p = subprocess.Popen(AGENT + ["run", "--model", str(model_path("speech12")), "--source", "mic:nosuch"],
                         env=alsa_home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # model load, then tries after 0.5, 1 and 2 s
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    tries = [line for line in err.splitlines() if "no audio input device named 'nosuch'" in line]
    assert len(tries) >= 2 and "kwtest" in tries[0], err
    assert noise_lines(err) == [], err
