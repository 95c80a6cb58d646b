"""Speech-embedding heads: a recipe with `[frontend] type = "speech_embedding"` trains a tiny
head on espeak-ng words through `keywire train`, exports int8 and float .tflite files the
agent loads and detects with, and a second run reads every embedding from the cache."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.protocol.sl_params import read_params
from keywire.agent.spotter import KeywordSpotter
from keywire.protocol.errors import ConfigError
from keywire.training.evaluate import evaluate_folder
from keywire.training.recipe import dumps_toml, from_dict, load_recipe

from tests.fixtures.speech import stream_of_words

HEAD_RECIPE = {
    "name": "head",
    "description": "test head: espeak-ng yes/no on speech embeddings",
    "keywords": ["yes", "no"],
    "model": "embedding_conv",
    "model_options": {"filters": 32, "units": 32, "dropout": 0.2},
    "embedding_frames": 12,
    "epochs": 20,
    "batch_size": 32,
    "learning_rate": 0.005,
    "early_stopping_patience": 0,
    "unknown_class_percentage": 100.0,
    "silence_class_percentage": 50.0,
    "seed": 3,
    "frontend": {"type": "speech_embedding"},
    "augmentation": {"copies": 2, "noise_dbfs": [-60.0, -35.0], "stream_probability": 0.5},
    "detection": {"detection_threshold": 150, "minimum_count": 2, "average_window_duration_ms": 400,
                  "suppression_ms": 1000},
}


@pytest.fixture(scope="module")
def head_run(keywire_cli, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the head once for this module, with a fresh embedding cache."""
    work = tmp_path_factory.mktemp("head")
    recipe = work / "head.toml"
    recipe.write_text(dumps_toml(dict(HEAD_RECIPE, data=[str(tiny_dataset)])))
    cache = work / "cache"
    r = keywire_cli("train", str(recipe), "--out", str(work / "m"), "--cache", str(cache), "--quiet", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"dir": work / "m", "recipe": recipe, "cache": cache, "stderr": r.stderr, "work": work}


@pytest.fixture(scope="module")
def validation_voices(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("val")
    for rel in (tiny_dataset / "validation_list.txt").read_text().split():
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(tiny_dataset / rel)
    return out


def test_head_files_name_their_family_and_embedding(head_run: dict) -> None:
    d = head_run["dir"]
    for name in ("head.keras", "head.tflite", "head.float.tflite", "recipe.toml", "report.json"):
        assert (d / name).stat().st_size > 0, name
    params = read_params((d / "head.tflite").read_bytes())
    assert params["fe.frontend_type"] == "speech_embedding"
    assert len(params["fe.embedding_sha256"]) == 64
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    m = KeywordModel.load(d / "head.tflite")
    assert m.input.dtype == np.int8 and tuple(m.input.shape) == (1, 12, 96)
    assert load_recipe(d / "recipe.toml").family == "speech_embedding"


def test_head_recognises_held_out_voices(head_run: dict, validation_voices: Path) -> None:
    int8 = evaluate_folder(KeywordModel.load(head_run["dir"] / "head.tflite"), validation_voices)
    assert int8.accuracy >= 0.6, int8.summary()  # 4 classes: chance is about 0.25
    flt = evaluate_folder(KeywordModel.load(head_run["dir"] / "head.float.tflite"), validation_voices)
    agree = np.mean([a == b for a, b in zip(int8.predicted, flt.predicted)])
    assert agree >= 0.8, (int8.predicted, flt.predicted)


def test_agent_detects_with_the_head_in_a_stream(head_run: dict) -> None:
    """The exported head in the agent's streaming spotter: the keywords of a stream of
    held-out voices are found near where they were spoken."""
    audio, truth = stream_of_words(["yes", "no", "yes", "no"], ["en-us-nyc", "en-gb+m3"], gap_s=2.0,
                                   noise_dbfs=-55.0, seed=1)
    spotter = KeywordSpotter(KeywordModel.load(head_run["dir"] / "head.tflite"))
    found = []
    for i in range(0, len(audio), 1600):
        found += spotter.feed(audio[i:i + 1600])
    hits = 0
    for word, start in truth:
        if any(d.keyword == word and start <= d.time_ms / 1000 <= start + 2.0 for d in found):
            hits += 1
    assert hits >= 3, ([(d.keyword, d.time_ms) for d in found], truth)


def _stream_run(model: KeywordModel, audio: np.ndarray, chunk: int, step_heads: bool):
    scores: list[np.ndarray] = []
    spotter = KeywordSpotter(model, step_heads=step_heads, on_scores=lambda t, s: scores.append(s.copy()))
    found = []
    for i in range(0, len(audio), chunk):
        found += spotter.feed(audio[i:i + chunk])
    spotter.reset()     # a second pass after reset starts the step state over
    again: list = []
    for i in range(0, len(audio), chunk):
        again += spotter.feed(audio[i:i + chunk])
    n = len(scores) // 2
    assert [d.keyword for d in again] == [d.keyword for d in found]
    return np.array(scores[:n], dtype=int), [(d.keyword, d.time_ms) for d in found], np.array(scores[n:], dtype=int)


@pytest.mark.parametrize("name", ["head.tflite", "head.float.tflite"])
def test_head_carries_a_step_model_that_streams_like_the_whole_window(head_run: dict, name: str) -> None:
    """The exported heads (int8 and float) carry a step model; the spotter runs it one new
    embedding at a time with the scores of the whole-window model (int8: within the
    quantisation of its state), the same detections, at any chunk size, also after reset."""
    from keywire.agent.streaming_head import step_model_bytes

    data = (head_run["dir"] / name).read_bytes()
    assert step_model_bytes(data) is not None
    model = KeywordModel.load(head_run["dir"] / name)
    assert model.stepper() is not None and model.stepper().kernel == 3
    audio, _ = stream_of_words(["yes", "no", "up", "yes", "no"], ["en-us-nyc", "en-gb+m3"], gap_s=1.5,
                               noise_dbfs=-50.0, seed=2)
    whole, whole_found, _ = _stream_run(model, audio, 1600, step_heads=False)
    stepped, found, after_reset = _stream_run(model, audio, 1600, step_heads=True)
    odd, odd_found, _ = _stream_run(model, audio, 333, step_heads=True)
    assert stepped.shape == whole.shape and len(stepped) > 100
    diff = np.abs(stepped - whole)
    if name == "head.float.tflite":
        assert diff.max() <= 1, diff.max()
    else:
        assert diff.max() <= 12 and diff.mean() < 1.0, (diff.max(), diff.mean())
    assert found == whole_found and found
    assert np.array_equal(odd, stepped) and odd_found == found
    assert np.array_equal(after_reset, stepped)


def test_swapping_to_a_step_head_mid_stream_keeps_detecting(head_run: dict) -> None:
    """A hot swap to a head with a step model (its state made in `swap_model`, outside the
    audio loop) starts it over from the whole window: the words after the swap are found."""
    audio, truth = stream_of_words(["yes", "no", "yes", "no"], ["en-us-nyc", "en-gb+m3"], gap_s=2.0,
                                   noise_dbfs=-55.0, seed=1)
    spotter = KeywordSpotter(KeywordModel.load(head_run["dir"] / "head.float.tflite"))
    half = len(audio) // 2
    found = spotter.feed(audio[:half])
    spotter.swap_model(KeywordModel.load(head_run["dir"] / "head.tflite"))
    after = []
    for i in range(half, len(audio), 1600):
        after += spotter.feed(audio[i:i + 1600])
    assert spotter.model.source.endswith("head.tflite")
    late = [(w, t) for w, t in truth if t * 16000 > half]
    hits = sum(any(d.keyword == w and t <= d.time_ms / 1000 <= t + 2.0 for d in after) for w, t in late)
    assert late and hits >= len(late) - 1, ([(d.keyword, d.time_ms) for d in found + after], truth)


def test_a_broken_step_model_is_refused_at_load_in_one_line(head_run: dict, tmp_path: Path) -> None:
    from keywire.agent.streaming_head import STEP_METADATA, step_model_bytes
    from keywire.protocol.errors import ModelError
    from keywire.protocol.sl_params import write_metadata

    data = (head_run["dir"] / "head.tflite").read_bytes()
    step = bytearray(step_model_bytes(data))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(write_metadata(data, STEP_METADATA, bytes(step[: len(step) // 2])))
    with pytest.raises(ModelError, match="step model") as err:
        KeywordModel.load(bad)
    assert "\n" not in str(err.value) and "bad.tflite" in str(err.value)


def test_second_run_reuses_cached_embeddings(keywire_cli, head_run: dict) -> None:
    work = head_run["work"]
    r = keywire_cli("train", str(head_run["recipe"]), "--out", str(work / "again"), "--cache",
                    str(head_run["cache"]), "--epochs", "1", "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "features: 0 clips computed" in r.stderr
    report = json.loads((work / "again" / "report.json").read_text())
    assert report["classes"] == ["yes", "no", "_unknown_", "_silence_"]


def test_recipe_mixing_families_is_one_clear_error(keywire_cli, tmp_path: Path, tiny_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="mixes feature families"):
        from_dict({"frontend": {"type": "speech_embedding", "filterbank_n_channels": 40}})
    recipe = tmp_path / "mixed.toml"
    recipe.write_text(dumps_toml(dict(HEAD_RECIPE, data=[str(tiny_dataset)], model="tc_resnet")))
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "m"), "--quiet", timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "mixes feature families" in lines[0] and "tc_resnet" in lines[0], r.stderr


def test_training_windows_hold_the_clip_inside_context_never_digital_silence() -> None:
    from keywire.training.augment import NoiseBank
    from keywire.training.embeddings import SHIFTS, clip_window, context_window, pick_windows, window_samples
    from keywire.training.recipe import AugmentationSettings

    rng = np.random.default_rng(0)
    word = np.zeros(16000, np.int16)
    word[4000:12000] = (np.sin(np.arange(8000) * 0.3) * 8000).astype(np.int16)
    total, pre = window_samples(16, 16000)
    assert total % 1280 == 0 and pre > 16000 and total - pre - 16000 == 320 * 16
    for w in (clip_window(word, 16, 16000), clip_window(np.zeros(16000, np.int16), 16, 16000),
              context_window(word, rng, AugmentationSettings(noise_probability=0.0), NoiseBank(()), NoiseBank(()),
                             None, 16, 16000, 16000)):
        assert len(w) == total
        frames = np.abs(w.astype(np.int32)).reshape(-1, 160).max(axis=1)
        assert frames.min() > 0  # every 10 ms of context carries some signal
    placed = clip_window(word, 16, 16000)
    assert np.abs(placed[pre + 4000:pre + 12000]).mean() > 20 * np.abs(placed[:pre]).mean()
    x = np.arange(3 * (16 + SHIFTS - 1) * 2, dtype=np.float32).reshape(3, 16 + SHIFTS - 1, 2)
    picked = pick_windows(x, rng, 16)
    assert picked.shape == (3, 16, 2)
    for row, full in zip(picked, x):  # a contiguous run of the sequence
        start = int(np.where(full[:, 0] == row[0, 0])[0][0])
        assert np.array_equal(row, full[start:start + 16])
