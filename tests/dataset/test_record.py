"""`keywire record`: takes from a real PortAudio capture device into Speech Commands layout.

The microphone is ALSA's `file` PCM plugin playing raw audio as input (a temporary
~/.asoundrc), so the command runs through PyAudio and PortAudio exactly as with a sound card.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keywire.host.cmd_record import Take, centre_on_speech, frame_levels, next_index
from tests.fixtures.speech import read_wav, synthesize

RATE = 16000


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def quiet(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(int(seconds * RATE)) * 32767 * 10 ** (-60 / 20)).astype(np.int16)


def window_with_word(word: np.ndarray, at_s: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of quiet noise with `word` starting at `at_s` (cut off at the end)."""
    x = quiet(seconds, rng)
    start = int(at_s * RATE)
    n = min(len(word), len(x) - start)
    x[start:start + n] = word[:n]
    return x


def centroid_s(x: np.ndarray) -> float:
    e = x.astype(np.float64) ** 2
    return float(np.sum(np.arange(len(x)) * e) / e.sum()) / RATE


@pytest.fixture(scope="module")
def marvin() -> np.ndarray:
    x, rate = read_wav(synthesize("marvin"))
    assert rate == RATE
    levels = frame_levels(x, RATE)
    keep = np.flatnonzero(levels > levels.max() - 40)  # espeak's leading and trailing silence off
    return x[keep[0] * 160:(keep[-1] + 1) * 160]


def test_centre_on_speech(marvin):
    rng = np.random.default_rng(0)
    for at_s in (0.15, 0.6, 1.1):
        take = centre_on_speech(window_with_word(marvin, at_s, 2.0, rng))
        assert isinstance(take, Take) and len(take.samples) == RATE
        assert abs(centroid_s(take.samples) - 0.5) < 0.1, at_s
        assert abs(take.speech_s - len(marvin) / RATE) < 0.1
    assert "no speech" in centre_on_speech(quiet(2.0, rng))
    assert "end of the listening window" in centre_on_speech(window_with_word(marvin, 2.0 - len(marvin) / RATE / 2,
                                                                            2.0, rng))


def test_next_index_continues_a_speakers_numbering(tmp_path):
    for name in ("abc_nohash_0.wav", "abc_nohash_4.wav", "abcd_nohash_9.wav", "abc_nohash_x.wav"):
        (tmp_path / name).touch()
    assert next_index(tmp_path, "abc") == 5 and next_index(tmp_path, "zzz") == 0


@pytest.fixture()
def mic_home(tmp_path: Path, marvin) -> dict[str, str]:
    """ALSA capture PCM `kwrec` whose input is: word, quiet (a take to repeat), word, word; 2 s each."""
    rng = np.random.default_rng(1)
    audio = np.concatenate([window_with_word(marvin, 0.7, 2.0, rng), quiet(2.0, rng),
                            window_with_word(marvin, 0.8, 2.0, rng), window_with_word(marvin, 0.6, 2.0, rng),
                            quiet(3.0, rng)])
    raw = tmp_path / "mic.raw"
    raw.write_bytes(audio.astype("<i2").tobytes())
    (tmp_path / ".asoundrc").write_text(
        f'pcm.kwrec {{\n type file\n slave.pcm "null"\n file "/dev/null"\n infile "{raw}"\n format "raw"\n}}\n')
    return dict(os.environ, HOME=str(tmp_path))


def test_record_takes_from_the_microphone(tmp_path, mic_home):
    out = tmp_path / "data"
    r = run_cli("record", "marvin", "--out", str(out), "-n", "3", "--device", "kwrec", "--speaker", "test1",
                env=mic_home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("no speech heard") == 1 and "take 2/3: say 'marvin' (again)" in r.stdout, r.stdout
    files = sorted((out / "marvin").iterdir())
    assert [f.name for f in files] == [f"test1_nohash_{i}.wav" for i in range(3)]
    for f in files:
        x, rate = read_wav(f)
        assert rate == RATE and len(x) == RATE
        assert abs(centroid_s(x) - 0.5) < 0.1, f
        assert frame_levels(x, RATE).max() > -30
    assert "ALSA lib" not in r.stderr


def test_record_bad_input(tmp_path, mic_home):
    r = run_cli("record", "../up", "--out", str(tmp_path), env=mic_home)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot be a folder name" in r.stderr
    r = run_cli("record", "up", "--out", str(tmp_path), "--speaker", "a_b", env=mic_home)
    assert r.returncode == 2 and "--speaker" in r.stderr
    r = run_cli("record", "up", "--out", str(tmp_path), "--device", "nosuch", env=mic_home)
    assert r.returncode == 4 and r.stderr.count("\n") == 1 and "nosuch" in r.stderr and "kwrec" in r.stderr
