"""Bundled models: listed with classes and sizes, found by name, loadable by the agent."""
from __future__ import annotations

from pathlib import Path

from keywire.agent.model import KeywordModel
from keywire.training.bundled import list_models, model_path
from keywire.training.evaluate import evaluate_folder

from tests.fixtures.paths import shared_path

from .test_mltk_models import subset

EXPECTED = {
    "on_off": ("on", "off", "_unknown_", "_silence_"),
    "speech12": ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"),
}


def test_bundled_models_load_with_their_classes() -> None:
    found = {m.name: m for m in list_models()}
    for name, classes in EXPECTED.items():
        if name not in found:
            continue
        m = KeywordModel.load(found[name].path)
        assert m.classes == classes == found[name].classes
        assert found[name].size == m.size and model_path(name) == found[name].path
        assert (found[name].path.parent / "recipe.toml").exists()
        assert (found[name].path.parent / "report.json").exists()
    assert "on_off" in found and found["on_off"].size < 120_000  # BRD2601-sized


def test_models_commands(keywire_cli) -> None:
    r = keywire_cli("models", timeout=60)
    assert r.returncode == 0 and "on_off" in r.stdout and "_unknown_" in r.stdout
    r = keywire_cli("models", "path", "on_off", timeout=60)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_file()
    r = keywire_cli("models", "path", "nope", timeout=60)
    assert r.returncode == 2 and "no bundled model named 'nope'" in r.stderr


def test_on_off_recognises_real_speech(tmp_path: Path) -> None:
    root = shared_path("speech_commands_v0.02_test_dev")
    r = evaluate_folder(KeywordModel.load(model_path("on_off")),
                        subset(root, tmp_path, {"on": 40, "off": 40, "yes": 20, "_unknown_": 20, "_silence_": 20}))
    assert r.accuracy >= 0.85, r.per_class()
