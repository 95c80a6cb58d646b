"""`keywire evaluate`: scores the speakers a model did not train on unless told otherwise, says
which split it scored, takes bundled model names, flat `<label>_<speaker>_<n>.wav` folders,
`--json` (stdout) and `--report PATH`. Real espeak-ng speech through the bundled speech12."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.paths import shared_path
from tests.fixtures.speech import read_wav, synthesize, write_wav


def _train_speaker() -> str:
    """A speaker speech12 trained on (its dataset.json)."""
    from keywire.training.bundled import model_path

    return json.loads((model_path("speech12").parent / "dataset.json").read_text())["speakers"]["train"][0]


NEW_SPEAKERS = ("ffff0001", "ffff0002")


@pytest.fixture(scope="module")
def sc_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech Commands layout; one speaker id speech12 trained on, two it never heard."""
    root = tmp_path_factory.mktemp("sc")
    for word in ("yes", "no", "house"):
        for spk, voice in zip((_train_speaker(),) + NEW_SPEAKERS, ("en-us", "en-gb", "en-us+f3")):
            x, rate = read_wav(synthesize(word, voice=voice))
            write_wav(root / word / f"{spk}_nohash_0.wav", x, rate)
    return root


def test_default_scores_held_out_speakers_and_says_so(keywire_cli, sc_folder: Path) -> None:
    r = keywire_cli("evaluate", "speech12", str(sc_folder), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["split"] == "test" and d["n"] == 6 and "held-out test split" in d["scored"]
    r = keywire_cli("evaluate", "speech12", str(sc_folder), timeout=120)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("accuracy ") and "on 6 clips" in first and "held-out test split" in first
    assert "ROC AUC" in r.stdout and "recall: share of the class's clips" in r.stdout  # headers explained
    assert "XNNPACK" not in r.stderr


def test_split_all_warns_that_training_speakers_are_included(keywire_cli, sc_folder: Path, tmp_path: Path) -> None:
    r = keywire_cli("evaluate", "speech12", str(sc_folder), "--split", "all", "--report", str(tmp_path / "r.json"),
                    timeout=120)
    assert r.returncode == 0, r.stderr
    assert "on 9 clips" in r.stdout and "warning:" in r.stderr and "trained on" in r.stderr
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["n"] == 9 and d["split"] == "all" and d["model"]["name"] == "speech12"
    r = keywire_cli("evaluate", "speech12", str(sc_folder), "--split", "train", "--json", timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 3


def test_flat_label_speaker_take_folder_is_accepted(keywire_cli, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for word in ("yes", "no", "seven"):
        for take, voice in enumerate(("en-us", "en-gb")):
            x, rate = read_wav(synthesize(word, voice=voice))
            write_wav(flat / f"{word}_{voice.replace('-', '')}_{take}.wav", x, rate)
    r = keywire_cli("evaluate", "speech12", str(flat), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["n"] == 6 and {"yes", "no", "_unknown_"} == {k for k in d["per_class"]}


def test_layout_errors_name_the_expected_layouts(keywire_cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    x, rate = read_wav(synthesize("yes"))
    write_wav(bad / "recording.wav", x, rate)
    r = keywire_cli("evaluate", "speech12", str(bad), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "<label>_<speaker>_<n>.wav" in r.stderr and "Speech Commands layout" in r.stderr
    (tmp_path / "empty").mkdir()
    r = keywire_cli("evaluate", "speech12", str(tmp_path / "empty"), timeout=120)
    assert r.returncode == 2 and "Speech Commands layout" in r.stderr


def test_split_without_recipe_is_refused(keywire_cli, sc_folder: Path, tmp_path: Path) -> None:
    import shutil

    from keywire.training.bundled import model_path

    bare = tmp_path / "bare.tflite"
    shutil.copy(model_path("speech12"), bare)
    r = keywire_cli("evaluate", str(bare), str(sc_folder), "--json", timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["split"] == "all"
    r = keywire_cli("evaluate", str(bare), str(sc_folder), "--split", "test", timeout=120)
    assert r.returncode == 2 and "needs the model's recipe" in r.stderr
    r = keywire_cli("evaluate", str(bare), str(sc_folder), "--split", "test", "--json",
                    "--recipe", str(model_path("speech12").parent / "recipe.toml"), timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 6


def test_speech12_on_the_shared_folder_scores_its_held_out_speakers(keywire_cli) -> None:
    root = shared_path("speech_commands_v0.02_test_dev")
    r = keywire_cli("evaluate", "speech12", str(root), "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    held_out = json.loads(r.stdout)
    r = keywire_cli("evaluate", "speech12", str(root), "--split", "all", "--json", timeout=300)
    everything = json.loads(r.stdout)
    assert held_out["split"] == "test" and 200 < held_out["n"] < everything["n"] == 2127
    assert held_out["accuracy"] < everything["accuracy"]  # training speakers flatter the model
