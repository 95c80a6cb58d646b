"""What `keywire train` prints and writes: one line per epoch with each metric once, no
TensorFlow log noise, evaluation plots of the held-out split, and warnings (not silence) for a
model that learned nothing, for empty splits and for keywords that exist only in train_data.
Real training runs on the tiny espeak-ng dataset."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from keywire.training.recipe import from_dict

from tests.fixtures.tiny_model import TINY_RECIPE


def _recipe(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(from_dict(dict(TINY_RECIPE, **fields)).to_toml())
    return path


def test_epoch_lines_plots_and_majority_warning(keywire_cli, tiny_dataset: Path, cache_dir: Path,
                                                tmp_path: Path) -> None:
    # weight averaging over ~1000 steps, two short epochs: the exported averaged weights are
    # still almost their random start
    recipe = _recipe(tmp_path, data=[str(tiny_dataset)], epochs=2, weight_averaging=0.999)
    out = tmp_path / "m"
    r = keywire_cli("train", str(recipe), "--out", str(out), "--cache", str(cache_dir))
    assert r.returncode == 0, r.stderr[-3000:]
    epochs = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/2", "2/2"]
    for e in epochs:
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert len(re.findall(rf"(?<![a-z_]){metric} ", e)) == 1, e
    assert "categorical_accuracy" not in r.stderr and "learning_rate" not in r.stderr
    for noise in ("XNNPACK", "fully_quantize", "UserWarning", "tensorflow/", "I0000", "W0000"):
        assert noise not in r.stderr, noise
    assert "warning: the model never predicts a keyword" in r.stderr or "majority-class" in r.stderr
    assert "weight_averaging = 0.999" in r.stderr
    assert "warning: the test split is empty" in r.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["warnings"]) == 2
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    for name in ("validation_confusion_matrix.png", "validation_roc.png", "validation_precision_recall.png",
                 "history.png"):
        assert (out / name).stat().st_size > 5000, name


def test_keyword_only_in_train_data_says_why_there_is_no_held_out_accuracy(
        keywire_cli, tiny_dataset: Path, cache_dir: Path, tmp_path: Path) -> None:
    real, synth = tmp_path / "real", tmp_path / "synth"
    for d in tiny_dataset.iterdir():
        if d.is_dir() and d.name != "yes":
            shutil.copytree(d, real / d.name)
    shutil.copytree(tiny_dataset / "yes", synth / "yes")
    recipe = _recipe(tmp_path, keywords=["yes"], data=[str(real)], train_data=[str(synth)], epochs=1)
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "m"), "--cache", str(cache_dir), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    for split in ("validation", "test"):
        assert f"warning: the {split} split is empty" in r.stderr
    assert "'yes' exist only in train_data" in r.stderr
    assert "training accuracy (last epoch" in r.stdout and "no held-out accuracy" in r.stdout
    assert not [line for line in r.stderr.splitlines() if line.startswith("epoch ")]  # --quiet
    assert (tmp_path / "m" / "history.png").stat().st_size > 5000  # one epoch still draws its point
