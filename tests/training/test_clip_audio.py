"""`keywire features` and `keywire evaluate` read a clip at another rate the same way (one
reader, one resampler), and a broken clip ends `keywire features` with one line."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keywire.agent.frontend import compute_features
from keywire.agent.model import KeywordModel
from keywire.training.audio import fit_length, load_clip
from keywire.training.evaluate import evaluate_folder
from tests.fixtures.paths import REPO
from tests.fixtures.speech import read_wav, synthesize, write_wav

KEYWIRE = str(Path(os.sys.executable).parent / "keywire")
MODEL = REPO / "training" / "models" / "on_off" / "on_off.tflite"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[int, Path]:
    """The word "on" fitted into exactly one second at 16 kHz, then written by sox at other rates."""
    d = tmp_path_factory.mktemp("rates")
    x, _ = read_wav(synthesize("on", rate=16000))
    one = np.zeros(16000, np.int16)
    one[(16000 - len(x)) // 2:][:len(x)] = x[:16000]
    src = write_wav(d / "src.wav", one)
    out = {}
    for rate in (8000, 22050, 44100):
        p = d / "on" / f"spk_nohash_{rate}.wav"
        p.parent.mkdir(exist_ok=True)
        subprocess.run(["sox", "-D", str(src), "-r", str(rate), "-b", "24", str(p)], check=True, capture_output=True)
        out[rate] = p
    return out


def features_cli(wavs: list[Path], out: Path) -> np.ndarray:
    r = subprocess.run([KEYWIRE, "features", *map(str, wavs), "--model", str(MODEL), "--output", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return np.load(out)


def test_features_and_evaluate_resample_alike(clips, tmp_path):
    model = KeywordModel.load(MODEL)
    fe = model.frontend
    assert fe.sample_rate_hz == 16000 and fe.sample_length == 16000
    got = features_cli(list(clips.values()), tmp_path / "f.npy")  # what `keywire features` writes
    result = evaluate_folder(model, next(iter(clips.values())).parent.parent)  # what `keywire evaluate` scores
    scores = {Path(name).name: s for name, s in zip(result.names, result.scores)}
    assert not result.skipped and sorted(scores) == sorted(p.name for p in clips.values())
    for i, path in enumerate(clips.values()):
        assert np.array_equal(scores[path.name], model.infer(got[i])), path.name
        samples = load_clip(path, fe.sample_rate_hz)
        assert len(samples) == fe.sample_length  # one second stays one second: no cropping differs
        assert np.array_equal(got[i], compute_features(fit_length(samples, fe.sample_length), fe)), path.name
    assert not np.array_equal(got[0], got[2])  # 8 kHz lost the upper band: the check can tell rates apart


def test_broken_clip_is_one_line(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    r = subprocess.run([KEYWIRE, "features", str(bad), "--model", str(MODEL), "--output", str(tmp_path / "f.npy")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # (the TFLite runtime may log a line of its own first)
    assert last.startswith("keywire: error:") and "bad.wav: not a usable WAV file" in last
    assert not (tmp_path / "f.npy").exists()
