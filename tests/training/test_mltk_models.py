"""`keywire evaluate` on MLTK's own models and real Speech Commands clips (needs ../shared)."""
from __future__ import annotations

from pathlib import Path

from keywire.training.evaluate import evaluate_folder, load_any_model

from tests.fixtures.paths import shared_path


def subset(root: Path, dst: Path, words: dict[str, int]) -> Path:
    """Symlink the first N clips of some word folders (Speech Commands layout)."""
    for word, n in words.items():
        (dst / word).mkdir(parents=True)
        for p in sorted((root / word).glob("*.wav"))[:n]:
            (dst / word / p.name).symlink_to(p)
    return dst


def test_micro_speech_on_real_speech(tmp_path: Path) -> None:
    root = shared_path("speech_commands_v0.02_test_dev")
    model = load_any_model(shared_path("mltk_models", "tflite_micro_speech.tflite"))
    r = evaluate_folder(model, subset(root, tmp_path, {"yes": 60, "no": 60, "up": 30, "_unknown_": 30}))
    pc = r.per_class()
    # MLTK's micro_speech model knows yes/no well; other words map to its _unknown_ class
    assert pc["yes"] >= 0.8 and pc["no"] >= 0.8, pc
    assert r.labels == ("yes", "no", "_unknown_", "_silence_") and r.accuracy >= 0.8


def test_on_off_v3_with_dc_notch_and_dynamic_int8(tmp_path: Path) -> None:
    root = shared_path("speech_commands_v0.02_test_dev")
    model = load_any_model(shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite"))
    assert model.frontend.quantize_dynamic_scale_enable and model.frontend.dc_notch_filter_enable
    r = evaluate_folder(model, subset(root, tmp_path, {"on": 40, "off": 40, "_unknown_": 40, "_silence_": 20}))
    pc = r.per_class()
    # _silence_ counts as _unknown_ for a model without a silence class
    assert set(pc) == {"on", "off", "_unknown_"}
    assert pc["on"] >= 0.85 and pc["off"] >= 0.85 and r.accuracy >= 0.85, pc


def test_mobilenetv2_archive_loads_and_scores(tmp_path: Path) -> None:
    root = shared_path("speech_commands_v0.02_test_dev")
    model = load_any_model(shared_path("mltk_models", "keyword_spotting_mobilenetv2.mltk.zip"))
    assert model.input.shape == (1, 59, 49, 1)
    r = evaluate_folder(model, subset(root, tmp_path, {"left": 30, "right": 30, "stop": 30}))
    assert r.accuracy >= 0.8, r.per_class()
