"""`keywire dataset synth` / `synthesize_passages`: real espeak-ng, flite and sox output in
Speech Commands layout, varied, reproducible, with near-miss negatives; bad input names itself."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keywire.protocol.errors import ConfigError
from keywire.training import synth, synth_negatives
from keywire.training.synth_words import PASSAGES

VOICES = "en-us,en-gb+f3,en-gb-scotland+m3,flite:slt,flite:kal16"
NAME = re.compile(r"^(?P<word>.+)_(?P<voice>[0-9a-f]{8})_nohash_(?P<n>\d+)\.wav$")


def _keywire(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def _synth(out: Path, seed: int = 3) -> subprocess.CompletedProcess:
    return _keywire("dataset", "synth", "--words", "on,off", "--out", str(out), "--per-word", "5",
                    "--per-negative", "1", "--near-misses", "2", "--common-negatives", "1",
                    "--voices", VOICES, "--seed", str(seed), "--jobs", "2", "-q")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    r = _synth(out)
    assert r.returncode == 0, r.stderr
    assert "10 keyword clips (2 words)" in r.stdout
    return out


def _clips(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.wav"))


def test_layout_format_and_names(dataset):
    from tests.fixtures.speech import read_wav

    manifest = json.loads((dataset / synth.MANIFEST).read_text())
    for word in ("on", "off"):
        clips = _clips(dataset / word)
        assert len(clips) == 5
        for p in clips:
            m = NAME.match(p.name)
            assert m and m["word"] == word
            x, rate = read_wav(p)
            assert rate == 16000 and len(x) == 16000  # 1 s, mono int16 (read_wav checks width)
            loud = np.nonzero(np.abs(x.astype(np.int32)) > 200)[0]
            assert len(loud) > 1600, f"{p.name} is (nearly) silent"
            assert loud[0] > 0 and loud[-1] < 15999  # the word is inside the clip, not cut at its ends
        ids = {NAME.match(p.name)["voice"] for p in clips}
        assert len(ids) == 5  # five different synthetic speakers
    assert set(manifest["voices"].values()) == {"espeak-ng:en-us", "espeak-ng:en-gb+f3",
                                                 "espeak-ng:en-gb-scotland+m3", "flite:slt", "flite:kal16"}


def test_clips_vary_in_length_level_and_spectrum(dataset):
    from tests.fixtures.speech import read_wav

    spans, peaks, centroids = [], [], []
    for p in _clips(dataset / "on") + _clips(dataset / "off"):
        x = read_wav(p)[0].astype(np.float64)
        loud = np.nonzero(np.abs(x) > 200)[0]
        spans.append(loud[-1] - loud[0])
        peaks.append(np.abs(x).max())
        spec = np.abs(np.fft.rfft(x))
        centroids.append((spec * np.arange(len(spec))).sum() / spec.sum())
    assert np.std(spans) / np.mean(spans) > 0.05
    assert max(peaks) / min(peaks) > 1.5
    assert len({round(c) for c in centroids}) == len(centroids)


def test_negatives_include_near_misses(dataset):
    manifest = json.loads((dataset / synth.MANIFEST).read_text())
    neg = manifest["negatives"]
    assert sum(r == "near-miss of on" for r in neg.values()) == 2
    assert sum(r == "near-miss of off" for r in neg.values()) == 2
    assert sum(r == "common word" for r in neg.values()) == 1
    for word in neg:
        folder = dataset / synth.normalize_word(word)
        assert len(_clips(folder)) == 1
    assert not {"on", "off"} & set(neg)


def test_same_seed_same_bytes_other_seed_other_clips(dataset, tmp_path):
    r = _synth(tmp_path / "again")
    assert r.returncode == 0, r.stderr

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.wav")}

    assert digest(tmp_path / "again") == digest(dataset)
    r = _synth(tmp_path / "other", seed=4)
    assert r.returncode == 0, r.stderr
    other = digest(tmp_path / "other")
    assert not set(other.values()) & set(digest(dataset).values())


def test_near_miss_rules():
    neg = synth_negatives.choose_negatives(["on"], [], near_misses=4, common=0, seed=0)
    assert len(neg) == 4 and set(neg) & {"an", "in", "own", "gone"}
    ph = dict(zip(["on"] + list(neg), synth_negatives.phonemes(["on"] + list(neg))))
    assert all(synth_negatives.edit_distance(ph["on"], ph[w]) == 1 for w in neg)
    no = synth_negatives.choose_negatives(["no"], [], near_misses=30, common=50, seed=0)
    assert "know" not in no  # a homophone is the keyword, never a negative
    with pytest.raises(ConfigError, match="'know' sounds the same as keyword 'no'"):
        synth_negatives.choose_negatives(["no"], ["know"], near_misses=0, common=0, seed=0)
    phrase = synth_negatives.choose_negatives(["hey wire"], [], near_misses=3, common=0, seed=0)
    assert phrase["hey"] == phrase["wire"] == "part of hey wire"
    assert sum(r == "near-miss of hey wire" for r in phrase.values()) == 3


def test_bad_input_names_the_problem(tmp_path):
    r = _keywire("dataset", "synth", "--words", " , ", "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and r.stderr == "keywire: error: --words is empty: name at least one keyword\n"
    r = _keywire("dataset", "synth", "--words", "on", "--out", str(tmp_path / "a"), "--voices", "en-us+nobody")
    assert r.returncode == 2 and "unknown voice 'en-us+nobody'" in r.stderr and r.stderr.count("\n") == 1
    r = _keywire("dataset", "synth", "--words", "on", "--out", str(tmp_path / "a"), "--voices", "flite:hal")
    assert r.returncode == 2 and "unknown voice 'flite:hal'" in r.stderr
    r = _keywire("dataset", "synth", "--words", "on/off", "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and "'on/off'" in r.stderr


def test_missing_engine_is_reported(tmp_path):
    """A PATH holding sox and espeak-ng but not flite: flite voices fail by name, espeak-ng works."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sox", "espeak-ng"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}"}
    r = _keywire("dataset", "synth", "--words", "on", "--out", str(tmp_path / "a"), "--voices", "flite:slt",
                 env=env)
    assert r.returncode == 7 and r.stderr == "keywire: error: TTS engine flite is unusable: flite is not installed\n"
    r = _keywire("dataset", "voices", env=env)
    assert r.returncode == 0 and "flite: UNUSABLE: flite is not installed" in r.stdout
    r = _keywire("dataset", "synth", "--words", "on", "--out", str(tmp_path / "b"), "--per-word", "2",
                 "--per-negative", "0", "-q", env=env)
    assert r.returncode == 0, r.stderr
    voices = json.loads((tmp_path / "b" / synth.MANIFEST).read_text())["voices"].values()
    assert voices and all(v.startswith("espeak-ng:") for v in voices)


def test_passages_make_long_keyword_free_speech(tmp_path):
    from tests.fixtures.speech import read_wav

    speech12 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert all(synth.contains_word(p, speech12) is None for p in PASSAGES)
    res = synth.synthesize_passages(tmp_path / "talk.wav", PASSAGES[:2], voices=("en-gb+m3", "flite:slt"),
                                    seed=1, forbidden=speech12)
    x, rate = read_wav(res.path)
    assert rate == 16000 and res.seconds == pytest.approx(len(x) / 16000) and res.seconds > 15
    assert [s.voice for s in res.segments] != [res.segments[0].voice] * 2
    for s in res.segments:
        seg = x[int(s.start_s * rate):int(s.end_s * rate)].astype(np.float64)
        assert np.sqrt(np.mean(seg ** 2)) > 300
    with pytest.raises(ConfigError, match="passage 0 contains the keyword 'on'"):
        synth.synthesize_passages(tmp_path / "x.wav", ["Turn it on please."], forbidden=speech12)
