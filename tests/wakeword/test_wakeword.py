"""`keywire wakeword`: one command from a word list to a calibrated speech-embedding model the
agent loads and detects with in a real espeak-ng stream; confusable negatives are real words
of the pronouncing dictionary; bad input is one line and the exit code of its kind."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keywire.protocol.sl_params import read_params
from keywire.protocol.errors import AudioError, ExitCode
from keywire.training.confusables import confusables, dictionary, pronounce
from keywire.training.wakeword import allowed_false_accepts, cap_background, report_markdown, split_background

from tests.fixtures.paths import REPO
from tests.fixtures.speech import stream_of_words, synthesize, write_wav

VOICES = "en-us,en-us+m3,en-us+f2,en-gb,en-gb+m7,en-gb-x-rp+f4,en-us-nyc,en-029+m2,en-gb-scotland,en-us+f5"


def keywire(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def speech_commands_tree(root: Path, clips: dict[str, str]) -> Path:
    """A `--background` folder in Speech Commands layout: relative path -> espeak-ng text."""
    for rel, text in clips.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(synthesize(text, voice="en-gb").read_bytes())
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two wake words on a tiny budget (about a minute on 2 cores)."""
    work = tmp_path_factory.mktemp("wakeword")
    out = work / "out"
    # the user's keyword-free speech, given as a Speech Commands tree that also holds the wake
    # words themselves: those two recordings must be left out
    talk = speech_commands_tree(work / "talk", {
        "marvin/0a1b2c3d_nohash_0.wav": "marvin", "_unknown_/sheila_0a1b2c3d_nohash_0.wav": "sheila",
        "_unknown_/table_0a1b2c3d_nohash_0.wav": "table",
        "passages/p0.wav": "the weather was cold and the trains were late again this morning"})
    r = keywire("wakeword", "marvin,sheila", "--out", str(out), "--voices", VOICES, "--per-word", "40",
                "--background", str(talk),
                "--confusables", "4", "--common-words", "2", "--per-negative", "6", "--speech-sentences", "12",
                "--calibration-sentences", "24", "--epochs", "15", "--copies", "1", "--cache", str(work / "cache"),
                # minutes of calibration speech: 30/hour allows a few false accepts
                "--target-fa-per-hour", "30",
                "--quiet", timeout=1500)  # about a minute on 2 idle cores; generous for shared ones
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wrote" in r.stdout and "marvin: threshold" in r.stdout, r.stdout
    return out


@pytest.mark.timeout(1800)
def test_one_model_holds_every_word_with_a_report(built: Path) -> None:
    model = built / "marvin.tflite"
    params = read_params(model.read_bytes())
    assert params["fe.frontend_type"] == "speech_embedding"
    assert params["classes"] == ["marvin", "sheila", "_unknown_", "_silence_"]
    assert len(params["detection_threshold_list"]) == 4
    report = json.loads((built / "report.json").read_text())
    assert report["words"] == ["marvin", "sheila"] and report["voices"]["count"] == 10
    # two speakers left (one Speech Commands id, one folder): one trains, one only calibrates
    assert report["real_background_files"] == {"used": 2, "training": 1, "calibration": 1, "left_out_wake_word": 2,
                                               "left_out_over_max_hours": 0}
    assert set(report["calibration"]["keywords"]) == {"marvin", "sheila"}
    for name in ("report.md", "plots/history.png", "plots/det.png", "recipe.toml"):
        assert (built / name).stat().st_size > 0, name
    words = dictionary()
    for w, cs in report["confusables"].items():
        assert len(cs) == 4
        for c in cs:  # real words of the pronouncing dictionary, never the word itself
            assert c["word"] in words and c["word"] != w, c
    assert "## Confusable words" in (built / "report.md").read_text()
    # 30/h over minutes of calibration speech allows some false accepts; at 0.5/h they would allow
    # none, and then the report says that the highest-scoring moment of that speech sets a threshold
    cal = report["calibration"]
    assert allowed_false_accepts(cal) == int(30 * cal["hours"]) >= 1
    assert "allows no false accept" not in (built / "report.md").read_text()
    strict = {**report, "calibration": {**cal, "budget_fa_per_hour_per_keyword": 0.5}}
    assert allowed_false_accepts(strict["calibration"]) == 0
    assert "allows no false accept at all" in report_markdown(strict)
    longer = {**strict, "calibration": {**strict["calibration"], "hours": 4.0}}  # 4 h at 0.5/h: two allowed
    assert allowed_false_accepts(longer["calibration"]) == 2 and "allows no false accept" not in report_markdown(longer)
    assert "2 recordings (1 trained on, 1 in calibration; 2 recordings" in (built / "report.md").read_text()
    mined = report["training"]["hard_negatives"]   # trained twice by default
    assert mined["events"] >= 0 and 0 < mined["stream_hours"] < 0.1
    assert f"the first head fired {mined['events']} times" in (built / "report.md").read_text()


def test_agent_detects_the_words_in_an_espeak_stream(built: Path, tmp_path: Path) -> None:
    audio, truth = stream_of_words(["marvin", "sheila", "marvin", "sheila"], ["en-us", "en-gb"], gap_s=3.0,
                                   noise_dbfs=-55.0, seed=2)
    wav = write_wav(tmp_path / "stream.wav", audio)
    r = subprocess.run([str(Path(sys.executable).parent / "keywire-agent"), "run", "--model",
                        str(built / "marvin.tflite"), "--source", f"file:{wav}", "--no-realtime"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    found = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    hits = sum(any(d["keyword"] == w and s <= d["time_ms"] / 1000 <= s + 2.5 for d in found) for w, s in truth)
    assert hits >= 3, ([(d["keyword"], d["time_ms"]) for d in found], truth)
    assert all(d["keyword"] in ("marvin", "sheila") for d in found)


def test_confusables_are_close_real_words_and_never_homophones() -> None:
    near = [c.word for c in confusables("computer", 12)]
    assert "commuter" in near and "compute" in near
    assert "computers" not in near and "computer" not in near
    key, source = pronounce("keywire")  # not in the dictionary: espeak-ng's phonemes
    assert source == "espeak-ng" and key[0] == "K"
    assert len(confusables("keywire", 6)) == 6


@pytest.mark.parametrize("words, code, text", [
    ("", ExitCode.CONFIG, "word list is empty"),
    (" , ,", ExitCode.CONFIG, "word list is empty"),
    ("日本", ExitCode.SPEECH_ENGINE, "cannot speak"),
])
def test_bad_words_are_one_line(words: str, code: int, text: str, tmp_path: Path) -> None:
    r = keywire("wakeword", words, "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.stderr


def test_background_holdout_keeps_whole_speakers_out_of_training() -> None:
    folders = [Path(f"talk/spk{i}/w{j}.wav") for i in range(4) for j in range(3)]
    train, cal = split_background(folders, 0.25, seed=0)
    assert len(cal) == 3 and len({f.parent for f in cal}) == 1 and not set(train) & set(cal)
    assert sorted(train + cal) == sorted(folders)
    assert split_background(folders, 0.25, seed=0) == (train, cal)            # the seed decides
    named = [Path(f"{w}/{s}_nohash_{n}.wav") for s in "abcdefgh" for n, w in enumerate(("yes", "no"))]
    train, cal = split_background(named, 0.25, seed=3)  # Speech Commands names: by speaker, not folder
    assert {f.name.split("_")[0] for f in cal}.isdisjoint({f.name.split("_")[0] for f in train})
    assert len({f.name.split("_")[0] for f in cal}) == 2 and len(cal) == 4
    assert split_background(folders, 0.0, seed=0) == (folders, folders)      # off: all serve both
    assert split_background(folders[:1], 0.25, seed=0) == (folders[:1], folders[:1])


def test_background_max_hours_draws_whole_recordings_at_random(tmp_path: Path) -> None:
    # twelve real WAV files of 0.5 s to 3 s (headers are what the cap reads)
    here, there = tmp_path / "a" / "talk", tmp_path / "b" / "talk"
    here.mkdir(parents=True)
    files = [write_wav(here / f"w{i:02d}.wav", np.zeros(8000 * (1 + i % 6), np.int16)) for i in range(12)]
    total = sum(0.5 * (1 + i % 6) for i in range(12))                         # 21 s
    kept, dropped = cap_background(files, 10 / 3600, seed=0)
    seconds = sum(0.5 * (1 + files.index(f) % 6) for f in kept)
    assert dropped == 12 - len(kept) > 0 and 10 <= seconds < 10 + 3         # whole files until 10 s are reached
    assert kept == [f for f in files if f in kept]                          # the given order is kept
    assert cap_background(files, 10 / 3600, seed=0) == (kept, dropped)     # the seed decides
    assert cap_background(files, 10 / 3600, seed=1)[0] != kept
    shutil.copytree(here, there)                                            # the same tree elsewhere: same draw
    moved = cap_background(sorted(there.iterdir()), 10 / 3600, seed=0)[0]
    assert [f.name for f in moved] == [f.name for f in kept]
    assert cap_background(files, 0, seed=0) == (files, 0)                  # 0 = all of it
    assert cap_background(files, total / 3600 + 1, seed=0) == (files, 0)
    (here / "w03.wav").write_bytes(b"not a wav")                            # a bad file drawn: one clear error
    with pytest.raises(AudioError, match="w03.wav"):
        cap_background(files, 1.0, seed=0)


@pytest.mark.parametrize("option, value", [("--hard-negatives", "1.5"), ("--hard-negatives", "-0.1"),
                                           ("--background-holdout", "1"), ("--background-max-hours", "-2")])
def test_bad_share_is_one_line(option: str, value: str, tmp_path: Path) -> None:
    r = keywire("wakeword", "marvin", "--out", str(tmp_path / "o"), option, value, timeout=60)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and value in lines[0], r.stderr


def test_background_of_only_the_wake_word_is_one_line(tmp_path: Path) -> None:
    talk = speech_commands_tree(tmp_path / "talk", {"marvin/0a1b2c3d_nohash_0.wav": "marvin"})
    r = keywire("wakeword", "marvin", "--out", str(tmp_path / "o"), "--background", str(talk), timeout=120)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "wake word itself" in lines[0], r.stderr


def test_unwritable_out_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = keywire("wakeword", "marvin", "--out", str(blocker / "out"), timeout=60)
    assert r.returncode == ExitCode.FILE, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not writable" in lines[0], r.stderr
