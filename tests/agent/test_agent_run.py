"""`keywire-agent run` end to end: real models, real synthesized speech, the CLI contract."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from keywire.protocol.sl_params import merge_params
from tests.fixtures.paths import shared_path
from tests.fixtures.speech import stream_of_words, write_wav

AGENT = [str(Path(os.sys.executable).parent / "keywire-agent")]
VOICES = ["en-us", "en+f3", "en-gb", "en+m3"]


def run_agent(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(AGENT + list(args), capture_output=True, text=True, timeout=timeout, **kw)


def detections(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def matched(found: list[dict], truth: list[tuple[str, float]], keywords: set[str]) -> int:
    """How many spoken keywords were detected within 2 s after they started."""
    hits = 0
    for word, start in truth:
        if word in keywords and any(d["keyword"] == word and start * 1000 <= d["time_ms"] <= start * 1000 + 2000
                                    for d in found):
            hits += 1
    return hits


@pytest.fixture(scope="module")
def on_off_stream(tmp_path_factory) -> tuple[Path, list]:
    words = ["on", "off", "yes", "on", "no", "off", "on", "off"]
    x, truth = stream_of_words(words, VOICES, gap_s=1.5, seed=1)
    return write_wav(tmp_path_factory.mktemp("s") / "on_off.wav", x), truth


@pytest.fixture(scope="module")
def yes_no_stream(tmp_path_factory) -> tuple[Path, list]:
    words = ["yes", "no", "on", "yes", "no", "off", "yes", "no"]
    x, truth = stream_of_words(words, VOICES, gap_s=1.5, seed=2)
    return write_wav(tmp_path_factory.mktemp("s") / "yes_no.wav", x), truth


def test_mltk_on_off_v3_detects_on_off(on_off_stream):
    model = shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite")
    wav, truth = on_off_stream
    r = run_agent("run", "--model", str(model), "--source", f"file:{wav}", "--no-realtime")
    assert r.returncode == 0, r.stderr
    found = detections(r.stdout)
    for d in found:
        assert {"keyword", "score", "time_ms", "event_id"} <= d.keys() and 0 <= d["score"] <= 255
    positives = sum(1 for w, _ in truth if w in ("on", "off"))
    assert matched(found, truth, {"on", "off"}) >= positives - 1, found


def test_mltk_micro_speech_detects_yes_no(yes_no_stream):
    model = shared_path("mltk_models", "tflite_micro_speech.tflite")
    wav, truth = yes_no_stream
    r = run_agent("run", "--model", str(model), "--source", f"file:{wav}", "--no-realtime")
    assert r.returncode == 0, r.stderr
    found = detections(r.stdout)
    positives = sum(1 for w, _ in truth if w in ("yes", "no"))
    assert matched(found, truth, {"yes", "no"}) >= positives - 2, found
    assert all(d["keyword"] in ("yes", "no") for d in found)


def test_overrides_change_detection(on_off_stream):
    model = shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite")
    wav, _ = on_off_stream
    r = run_agent("run", "--model", str(model), "--source", f"file:{wav}", "--no-realtime", "--threshold", "255")
    assert r.returncode == 0 and detections(r.stdout) == []  # 255 can never be exceeded


def test_stdin_source(on_off_stream):
    model = shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite")
    wav, _ = on_off_stream
    pcm = subprocess.run(["sox", str(wav), "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", "-"],
                         capture_output=True, check=True).stdout
    r = subprocess.run(AGENT + ["run", "--model", str(model), "--source", "stdin@8000"],
                       input=pcm, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {d["keyword"] for d in detections(r.stdout.decode())} >= {"on", "off"}


def test_pyaudio_path_through_alsa_file_plugin(tmp_path, yes_no_stream):
    """A real PortAudio capture device: ALSA's `file` PCM plugin plays a raw file as input."""
    model = shared_path("mltk_models", "tflite_micro_speech.tflite")
    wav, truth = yes_no_stream
    raw = tmp_path / "in.raw"
    subprocess.run(["sox", str(wav), "-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", str(raw)],
                   check=True)
    (tmp_path / ".asoundrc").write_text(
        'pcm.kwtest {\n type file\n slave.pcm "null"\n file "/dev/null"\n'
        f' infile "{raw}"\n format "raw"\n}}\n')
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.Popen(AGENT + ["run", "--model", str(model), "--source", "mic:kwtest"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found: list[dict] = []
    deadline = time.monotonic() + 60
    try:
        assert p.stdout is not None
        while time.monotonic() < deadline and len(found) < 4:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                found.append(json.loads(line))
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err[-2000:]
    assert {d["keyword"] for d in found} == {"yes", "no"}, (found, err[-2000:])


# ---------------------------------------------------------------- bad input
def test_not_a_model(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 100)
    r = run_agent("run", "--model", str(bad), "--source", "silence")
    assert r.returncode == 3 and r.stderr.strip().count("\n") == 0
    assert "not a TFLite model" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_model(tmp_path):
    data = bytearray(shared_path("mltk_models", "tflite_micro_speech.tflite").read_bytes())
    data[200:4000] = os.urandom(3800)
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(bytes(data))
    r = run_agent("run", "--model", str(bad), "--source", "silence")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("keywire-agent: error:")


def test_input_shape_mismatch(tmp_path):
    data = shared_path("mltk_models", "tflite_micro_speech.tflite").read_bytes()
    bad = tmp_path / "mismatch.tflite"
    bad.write_bytes(merge_params(data, {"fe.filterbank_n_channels": 32}))
    r = run_agent("run", "--model", str(bad), "--source", "silence")
    assert r.returncode == 3 and "does not match its frontend" in r.stderr


def test_wrong_wav_format(tmp_path):
    model = shared_path("mltk_models", "tflite_micro_speech.tflite")
    alaw = tmp_path / "alaw.wav"  # PCM and float of any width are read; companded audio is not
    subprocess.run(["sox", "-n", "-r", "16000", "-e", "a-law", str(alaw), "trim", "0", "1"], check=True)
    r = run_agent("run", "--model", str(model), "--source", f"file:{alaw}", "--no-realtime")
    assert r.returncode == 4 and "A-law WAV is not supported" in r.stderr, r.stderr


def test_missing_audio_device_keeps_retrying_then_stops():
    model = shared_path("mltk_models", "tflite_micro_speech.tflite")
    p = subprocess.Popen(AGENT + ["run", "--model", str(model), "--source", "mic:no-such-device-xyz"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    assert p.poll() is None  # a daemon keeps running and reopens with backoff
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert "no audio input device named 'no-such-device-xyz'" in err


def test_unknown_source_and_missing_model(tmp_path):
    r = run_agent("run", "--model", str(tmp_path / "nope.tflite"), "--source", "silence")
    assert r.returncode == 3 and "model file not found" in r.stderr
    model = shared_path("mltk_models", "tflite_micro_speech.tflite")
    r = run_agent("run", "--model", str(model), "--source", "radio:fm")
    assert r.returncode == 2 and "unknown audio source" in r.stderr
