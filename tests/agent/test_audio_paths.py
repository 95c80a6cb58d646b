"""`keywire-agent run` on every kind of audio input: other rates, odd formats, broken files and
bad source specs end either with every detection emitted (exit 0) or with one line naming the
problem and its exit code, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.paths import REPO
from tests.fixtures.speech import stream_of_words, write_wav

AGENT = str(Path(os.sys.executable).parent / "keywire-agent")
MODEL = REPO / "training" / "models" / "on_off" / "on_off.tflite"
WORDS = ["on", "off", "yes", "on", "off", "on"]


def run(source: str, stdin: bytes = b"") -> tuple[int, list[dict], str]:
    r = subprocess.run([AGENT, "run", "--model", str(MODEL), "--source", source, "--no-realtime"],
                       input=stdin, capture_output=True, timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "Traceback" not in err, err
    return r.returncode, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def keywords(found: list[dict]) -> list[tuple[str, int]]:
    return [(d["keyword"], d["time_ms"]) for d in found]


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    x, _ = stream_of_words(WORDS, ["en-us", "en+f3", "en-gb"], gap_s=1.2, seed=3)
    return write_wav(tmp_path_factory.mktemp("paths") / "on_off.wav", x[: len(x) - 8000])  # ends soon after a word


@pytest.fixture(scope="module")
def reference(stream) -> list[dict]:
    rc, found, err = run(f"file:{stream}")
    assert rc == 0 and len(found) >= 3, err
    return found


def sox(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["sox", "-D", str(src), *args, str(dst)], check=True, capture_output=True)
    return dst


def close_to(a: list[dict], b: list[dict], tolerance_ms: int = 100) -> bool:
    return len(a) == len(b) and all(x["keyword"] == y["keyword"] and abs(x["time_ms"] - y["time_ms"]) <= tolerance_ms
                                    for x, y in zip(a, b))


@pytest.mark.parametrize("args", [("-r", "44100"), ("-r", "8000", "-b", "24"), ("-r", "22050", "-c", "2"),
                                  ("-b", "32", "-e", "floating-point"), ("-b", "8", "-e", "unsigned-integer")])
def test_other_rates_and_formats_end_cleanly_with_every_detection(stream, reference, tmp_path, args):
    # at another rate the stream was resampled twice (sox, then the agent): the same words are
    # found at about the same times; before, the resampler was flushed twice and the run ended
    # in "RuntimeError: Input after last input" with exit 1 after the last detection
    rc, found, err = run(f"file:{sox(stream, tmp_path / 'x.wav', *args)}")
    assert rc == 0, err
    if "8000" in args:  # telephone bandwidth loses what the model listens to above 4 kHz
        assert found and {d["keyword"] for d in found} <= {"on", "off"}, keywords(found)
    else:
        assert close_to(found, reference), (keywords(found), keywords(reference))


def test_file_cut_mid_sample(stream, reference, tmp_path):
    cut = tmp_path / "cut.wav"
    cut.write_bytes(stream.read_bytes()[:-1])
    rc, found, err = run(f"file:{cut}")
    assert rc == 0 and "ends inside a sample frame" in err
    assert close_to(found, reference, tolerance_ms=0)


def test_stdin_at_another_rate_is_flushed_at_the_end(stream, reference, tmp_path):
    raw = sox(stream, tmp_path / "x.raw", "-r", "22050", "-t", "raw", "-e", "signed-integer", "-b", "16")
    rc, found, err = run("stdin@22050", stdin=raw.read_bytes())
    assert rc == 0, err
    assert close_to(found, reference), (keywords(found), keywords(reference))


def header_only(path: Path) -> Path:
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", str(path), "trim", "0", "0"], check=True)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d, s: d.joinpath("rate0.wav").write_bytes(s[:24] + b"\0\0\0\0" + s[28:]), "sample rate 0 Hz"),
    (lambda d, s: d.joinpath("bogus.wav").write_bytes(b"RIFX" + s[4:]), "no RIFF/WAVE header"),
    (lambda d, s: d.joinpath("empty.wav").write_bytes(b""), "the file is empty"),
    (lambda d, s: header_only(d / "nodata.wav"), "WAV file has no samples"),
    (lambda d, s: subprocess.run(["sox", "-n", "-r", "16000", "-e", "a-law", str(d / "alaw.wav"), "trim", "0", "1"],
                                 check=True), "A-law WAV is not supported"),
    (lambda d, s: None, "audio file not found"),
])
def test_unusable_wav_is_one_line_and_exit_4(stream, tmp_path, make, message):
    make(tmp_path, stream.read_bytes())
    made = [p for p in tmp_path.iterdir()] or [tmp_path / "missing.wav"]
    rc, found, err = run(f"file:{made[0]}")
    last = err.strip().splitlines()[-1]
    assert rc == 4 and found == [], err
    assert last.startswith("keywire-agent: error:") and message in last and made[0].name in last, err


@pytest.mark.parametrize("source", ["stdin@abc", "stdin@0", "stdin@-5", "stdin@16000.5", "silence:abc", "silence:-1",
                                    "silence:nan"])
def test_bad_source_spec_is_one_line_and_exit_2(source):
    rc, found, err = run(source)
    last = err.strip().splitlines()[-1]
    assert rc == 2 and found == [], err
    assert last.startswith("keywire-agent: error:") and repr(source) in last, err
