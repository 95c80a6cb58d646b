"""Board test fixtures: a small real model that fires on spoken words, speech WAVs, and
helpers that run `keywire board-emulator` as a separate process on a real pseudo-terminal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.fixtures.paths import REPO
from tests.fixtures.speech import stream_of_words, write_wav

# A real TFLite model built with TensorFlow in a subprocess (TF must not be imported into the
# test process). Input: 49x40 float log-filterbank frames (16 kHz, 30/20 ms, 40 channels).
# "speech" rises when the mean of the newest 5 frames exceeds 520 (speech is 550-680 in these
# features, -60 dBFS noise about 430): a "voice activity keyword" whose behaviour on espeak-ng
# words is predictable, so protocol tests can count detections exactly.
_BUILD = r"""
import sys, numpy as np, tensorflow as tf
inp = tf.keras.Input((49, 40, 1))
x = tf.keras.layers.Flatten()(inp)
dense = tf.keras.layers.Dense(2)
out = tf.keras.layers.Softmax()(dense(x))
m = tf.keras.Model(inp, out)
w = np.zeros((49 * 40, 2), np.float32)
w.reshape(49, 40, 2)[-5:, :, 0] = 0.05 / (5 * 40)
dense.set_weights([w, np.array([-0.05 * 520, 0.0], np.float32)])
open(sys.argv[1], "wb").write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""

MODEL_VERSION = "4"


def _with_params(raw: bytes, name: str, threshold: int) -> bytes:
    from keywire.protocol.sl_params import write_params
    from keywire.protocol.frontend_settings import FrontendSettings

    fe = FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=40)
    params = {"name": name, "version": MODEL_VERSION, "classes": ["speech", "_silence_"], **fe.to_params(),
              "average_window_duration_ms": 200, "detection_threshold": threshold, "suppression_ms": 1500,
              "minimum_count": 2, "latency_ms": 100}
    return write_params(raw, params)


@pytest.fixture(scope="session")
def word_models(cache_dir: Path) -> tuple[Path, Path]:
    """Two variants of the model (names "words-a" and "words-b") as .tflite paths."""
    d = cache_dir / "board"
    d.mkdir(parents=True, exist_ok=True)
    raw = d / f"words-raw-v{MODEL_VERSION}.tflite"
    if not raw.exists():
        tmp = raw.with_suffix(".tmp")
        subprocess.run([sys.executable, "-c", _BUILD, str(tmp)], check=True, capture_output=True)
        tmp.rename(raw)
    out = []
    for name, th in (("words-a", 150), ("words-b", 140)):
        p = d / f"{name}-v{MODEL_VERSION}.tflite"
        if not p.exists():
            p.write_bytes(_with_params(raw.read_bytes(), name, th))
        out.append(p)
    return out[0], out[1]


@pytest.fixture(scope="session")
def words_wav(cache_dir: Path) -> Path:
    """Three spoken words with 1.5 s gaps (about 6.6 s)."""
    p = cache_dir / "board" / "three-words.wav"
    if not p.exists():
        x, _ = stream_of_words(["yes", "no", "yes"], ["en-us", "en-gb"], gap_s=1.5)
        write_wav(p, x)
    return p


@pytest.fixture(scope="session")
def word_wav(cache_dir: Path) -> Path:
    """One spoken word (about 2.6 s), for tests that only need audio flowing."""
    p = cache_dir / "board" / "one-word.wav"
    if not p.exists():
        x, _ = stream_of_words(["yes"], ["en-us"], gap_s=1.0)
        write_wav(p, x)
    return p


class Emulator:
    """`keywire board-emulator` in a subprocess; `port` is the path it printed first."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        self.stderr_path = workdir / "emulator.err"
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "keywire"), "board-emulator", *args],
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"), text=True,
                                     cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.wait(10)
            raise AssertionError(f"emulator printed no port: {self.stderr_path.read_text()}")
        self.port = line
        self.started = time.monotonic()

    def wait_stats(self, timeout: float = 60.0) -> dict:
        """Wait for the emulator to finish; its final JSON statistics."""
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, self.stderr_path.read_text()
        return json.loads(out.strip().splitlines()[-1])["emulator"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator:
    started: list[Emulator] = []

    def start(*args: str) -> Emulator:
        emu = Emulator([*args, "--port-link", str(tmp_path / f"ttyBOARD{len(started)}")], tmp_path)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def agent_cmd() -> list[str]:
    return [str(Path(sys.executable).parent / "keywire-agent")]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def run_agent_during(emu, *args: str) -> tuple[dict, str, str]:  # noqa: ANN001 - Emulator
    """Run `keywire-agent run ARGS` until the emulator's WAV is played out: (emulator stats, stdout, stderr)."""
    agent = subprocess.Popen([*agent_cmd(), "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env())
    try:
        stats = emu.wait_stats()
    finally:
        agent.terminate()
        out, err = agent.communicate(timeout=10)
    return stats, out, err


def read_json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_for(cond, timeout: float, step: float = 0.02) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


__all__ = ["Emulator", "agent_cmd", "env", "read_json_lines", "wait_for", "Optional"]
