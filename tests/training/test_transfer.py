"""Transfer learning: new keywords from a base model's weights, and bases that do not fit."""
from __future__ import annotations

import json
from pathlib import Path

from keywire.agent.model import KeywordModel

from tests.fixtures.paths import shared_path


def test_transfer_from_a_tiny_base(keywire_cli, tiny_model_dir: Path, tiny_dataset: Path, cache_dir: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "t"
    r = keywire_cli("transfer", "--base", str(tiny_model_dir), "--keywords", "up,stop", "--data", str(tiny_dataset),
                    "--epochs", "3", "--freeze", "all", "--out", str(out), "--name", "upstop", "--cache", str(cache_dir),
                    "--augmentation.copies", "1", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    m = KeywordModel.load(out / "upstop.tflite")
    assert m.classes == ("up", "stop", "_unknown_", "_silence_")
    base = KeywordModel.load(tiny_model_dir / "tiny.tflite")
    assert m.frontend == base.frontend  # the base's frontend is kept
    assert json.loads((out / "history.json").read_text())["loss"].__len__() == 3


def test_base_that_does_not_fit_the_frontend_is_an_error(keywire_cli, tiny_model_dir: Path, tiny_dataset: Path,
                                                        tmp_path: Path) -> None:
    r = keywire_cli("transfer", "--base", str(tiny_model_dir), "--keywords", "up", "--data", str(tiny_dataset),
                    "--frontend.window_step_ms", "10", "--out", str(tmp_path / "x"), timeout=120)
    assert r.returncode == 2
    assert "takes input [49, 40, 1]" in r.stderr and "98 frames x 40 channels" in r.stderr
    # one error line (the TFLite runtime may print its own INFO line first), no traceback
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("keywire: error:")] == \
        [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("keywire: error:")]) == 1
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()


def test_transfer_from_mltk_mobilenetv2_archive(keywire_cli, tiny_dataset: Path, cache_dir: Path,
                                                tmp_path: Path) -> None:
    base = shared_path("mltk_models", "keyword_spotting_mobilenetv2.mltk.zip")
    out = tmp_path / "m"
    r = keywire_cli("transfer", "--base", str(base), "--keywords", "yes,no", "--data", str(tiny_dataset),
                    "--epochs", "1", "--out", str(out), "--name", "yesno", "--cache", str(cache_dir),
                    "--augmentation.copies", "0", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    m = KeywordModel.load(out / "yesno.tflite")
    assert m.classes == ("yes", "no", "_unknown_", "_silence_")
    assert m.input.shape == (1, 59, 49, 1) and m.frontend.sample_length_ms == 1200
