"""Train + export + evaluate on a tiny synthetic dataset, through the `keywire` commands."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.protocol.sl_params import read_params
from keywire.training.evaluate import evaluate_folder, load_any_model

from tests.fixtures.tiny_model import TINY_RECIPE


@pytest.fixture(scope="module")
def validation_folder(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset's held-out voices, Speech Commands layout (symlinks)."""
    out = tmp_path_factory.mktemp("val")
    for rel in (tiny_dataset / "validation_list.txt").read_text().split():
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(tiny_dataset / rel)
    return out


def test_model_directory_holds_every_artifact(tiny_model_dir: Path) -> None:
    for name in ("tiny.keras", "tiny.tflite", "tiny.float.tflite", "recipe.toml", "history.json",
                 "history.png", "report.json", "dataset.json"):
        assert (tiny_model_dir / name).stat().st_size > 0, name
    hist = json.loads((tiny_model_dir / "history.json").read_text())
    assert len(hist["loss"]) == TINY_RECIPE["epochs"] and "val_accuracy" in hist
    report = json.loads((tiny_model_dir / "report.json").read_text())
    assert report["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert report["validation"]["n"] > 0 and 0 <= report["validation"]["accuracy"] <= 1


def test_int8_model_follows_mltk_conventions(tiny_model: Path) -> None:
    params = read_params(tiny_model.read_bytes())
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    assert params["fe.window_step_ms"] == 20 and params["fe.filterbank_n_channels"] == 40
    assert params["fe.pcan_enable"] is True and params["detection_threshold"] == 160
    m = KeywordModel.load(tiny_model)
    assert m.input.dtype == np.int8 and (m.input.scale, m.input.zero_point) == (1.0, 0)
    assert m.output.dtype == np.int8 and m.input.shape == (1, 49, 40, 1)


def test_exported_models_recognise_held_out_voices(tiny_model_dir: Path, validation_folder: Path) -> None:
    int8 = evaluate_folder(load_any_model(tiny_model_dir), validation_folder)
    assert int8.accuracy >= 0.6, int8.summary()  # 4 classes: chance is about 0.25
    flt = evaluate_folder(KeywordModel.load(tiny_model_dir / "tiny.float.tflite"), validation_folder)
    agree = np.mean([a == b for a, b in zip(int8.predicted, flt.predicted)])
    assert agree >= 0.85 and abs(flt.accuracy - int8.accuracy) <= 0.1


def test_evaluate_command_writes_json_and_plots(keywire_cli, tiny_model: Path, validation_folder: Path,
                                                tmp_path: Path) -> None:
    r = keywire_cli("evaluate", str(tiny_model), str(validation_folder), "--split", "validation",
                    "--report", str(tmp_path / "e.json"), "--plots", str(tmp_path / "plots"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("accuracy ") and "yes" in r.stdout and "validation split" in r.stdout
    d = json.loads((tmp_path / "e.json").read_text())
    assert {"accuracy", "per_class", "classes", "confusion_matrix", "n", "roc_auc"} <= set(d)
    assert d["n"] == sum(map(sum, d["confusion_matrix"])) == len(list(validation_folder.rglob("*.wav")))
    assert d["classes"] == ["yes", "no", "_unknown_", "_silence_"]
    for p in ("confusion_matrix.png", "roc.png", "precision_recall.png"):
        assert (tmp_path / "plots" / p).stat().st_size > 1000


def test_second_training_run_reuses_cached_features(keywire_cli, tiny_model_dir: Path, cache_dir: Path,
                                                    tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text((tiny_model_dir / "recipe.toml").read_text())
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "m"), "--cache", str(cache_dir),
                    "--epochs", "1", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "features: 0 clips computed" in r.stderr
    assert (tmp_path / "m" / "tiny.tflite").exists()


def test_weight_averaging_exports_the_averaged_weights(keywire_cli, tiny_model_dir: Path, cache_dir: Path,
                                                      tmp_path: Path) -> None:
    import keras

    recipe = tmp_path / "r.toml"
    recipe.write_text((tiny_model_dir / "recipe.toml").read_text())
    weights = []
    for name, extra in (("plain", []), ("ema", ["--weight-averaging", "0.9"])):
        r = keywire_cli("train", str(recipe), "--out", str(tmp_path / name), "--cache", str(cache_dir),
                        "--epochs", "2", "--early-stopping-patience", "0", "--quiet", *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (tmp_path / name / "tiny.tflite").exists()
        weights.append(keras.models.load_model(tmp_path / name / "tiny.keras", compile=False).get_weights())
    # same seed, same data: only the averaging makes the saved weights differ
    assert any(not np.allclose(a, b) for a, b in zip(*weights))


def test_ensemble_averages_its_members_in_one_model(keywire_cli, tiny_model_dir: Path, cache_dir: Path,
                                                   tmp_path: Path) -> None:
    import keras

    from keywire.agent.model import KeywordModel

    recipe = tmp_path / "r.toml"
    recipe.write_text((tiny_model_dir / "recipe.toml").read_text())
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "e"), "--cache", str(cache_dir),
                    "--epochs", "1", "--ensemble", "2", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    m = keras.models.load_model(tmp_path / "e" / "tiny.keras", compile=False)
    members = [layer for layer in m.layers if layer.name.startswith("member")]
    assert len(members) == 2
    x = np.random.default_rng(0).uniform(-128, 127, (3,) + tuple(m.input_shape[1:])).astype(np.float32)
    want = (members[0](x).numpy() + members[1](x).numpy()) / 2
    assert np.allclose(m(x).numpy(), want, atol=1e-5)
    assert not np.allclose(members[0](x).numpy(), members[1](x).numpy())  # different seeds
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert len(report["members_best_val_accuracy"]) == 2
    # one deployable int8 model at twice a member's size
    single = KeywordModel.load(tiny_model_dir / "tiny.tflite")
    assert KeywordModel.load(tmp_path / "e" / "tiny.tflite").size > 1.6 * single.size


def test_ensemble_of_two_architectures(keywire_cli, tiny_model_dir: Path, tiny_dataset: Path, cache_dir: Path,
                                       tmp_path: Path) -> None:
    import keras

    recipe = tmp_path / "r.toml"
    recipe.write_text((tiny_model_dir / "recipe.toml").read_text())
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "h"), "--cache", str(cache_dir), "--epochs", "1",
                    "--ensemble_models", '[{ model = "bc_resnet", width = 0.5, time_stride = 2 }]', "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    m = keras.models.load_model(tmp_path / "h" / "tiny.keras", compile=False)
    members = [layer for layer in m.layers if layer.name.startswith("member")]
    assert [len(x.layers) > 0 for x in members] == [True, True]
    assert {x.layers[-1].name for x in members} == {"scores"}
    assert any("fdw" in layer.name for layer in members[1].layers)  # the BC-ResNet member
    assert not any("fdw" in layer.name for layer in members[0].layers)  # the recipe's own CNN
    x = np.random.default_rng(1).uniform(-128, 127, (2,) + tuple(m.input_shape[1:])).astype(np.float32)
    assert np.allclose(m(x).numpy(), (members[0](x).numpy() + members[1](x).numpy()) / 2, atol=1e-5)
    report = json.loads((tmp_path / "h" / "report.json").read_text())
    assert report["members"] == ["on_off_cnn", "bc_resnet"]
    assert report["validation"]["accuracy"] > 0  # the int8 export runs through the agent
    # an ensemble is a transfer base too: its members' embeddings feed the new head
    r = keywire_cli("transfer", "--base", str(tmp_path / "h"), "--keywords", "up,stop", "--data",
                    str(tiny_dataset), "--epochs", "1", "--out", str(tmp_path / "t"), "--name", "upstop",
                    "--cache", str(cache_dir), "--augmentation.copies", "1", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    t = keras.models.load_model(tmp_path / "t" / "upstop.keras", compile=False)
    assert t.output_shape[-1] == 4 and t.get_layer("base").get_layer("members") is not None


@pytest.mark.parametrize("extra, message", [
    (["--epochz", "3"], "unknown recipe field --epochz (did you mean --epochs?)"),
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--keywords", "yes,maybe"], "no samples for keyword 'maybe'"),
    (["--augmentation.speed", "1.2,0.8"], "augmentation.speed"),
    (["--weight-averaging", "1.5"], "weight_averaging"),
    (["--ensemble", "0"], "ensemble"),
])
def test_bad_input_fails_before_training_with_one_line(keywire_cli, tiny_dataset: Path, tmp_path: Path,
                                                      extra: list, message: str) -> None:
    from keywire.training.recipe import from_dict

    recipe = tmp_path / "r.toml"
    recipe.write_text(from_dict(dict(TINY_RECIPE, data=[str(tiny_dataset)])).to_toml())
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "m"), *extra, timeout=120)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "m").exists()


def test_recipe_typo_in_file_is_named(keywire_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'keywords = ["yes"]\ndata = ["{tiny_dataset}"]\n[augmentation]\ncopys = 2\n')
    r = keywire_cli("train", str(recipe), timeout=120)
    assert r.returncode == 2 and "augmentation.copys" in r.stderr and "did you mean" in r.stderr


def test_empty_keyword_folder_is_named(keywire_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    d = tmp_path / "ds"
    shutil.copytree(tiny_dataset, d)
    shutil.rmtree(d / "no")
    (d / "no").mkdir()
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'keywords = ["yes", "no"]\ndata = ["{d}"]\n')
    r = keywire_cli("train", str(recipe), timeout=120)
    assert r.returncode == 2 and f"{d / 'no'}" in r.stderr and "holds no WAV" in r.stderr


def test_single_keyword_binary_model(keywire_cli, tiny_dataset: Path, cache_dir: Path, tmp_path: Path) -> None:
    """The TFLite-tutorial style detector: one sigmoid output, classes [keyword]."""
    recipe = tmp_path / "bin.toml"
    recipe.write_text(f'name = "bin"\nkeywords = ["yes"]\ndata = ["{tiny_dataset}"]\nmodel = "binary_cnn"\n'
                      'epochs = 20\nlearning_rate = 0.01\nseed = 2\n'
                      '[frontend]\nwindow_size_ms = 30\nwindow_step_ms = 20\nfilterbank_n_channels = 40\n'
                      '[augmentation]\ncopies = 1\n')
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "b"), "--cache", str(cache_dir), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    m = KeywordModel.load(tmp_path / "b" / "bin.tflite")
    assert m.classes == ("yes",) and m.output.shape == (1, 1)
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["validation"]["classes"] == ["yes"] and report["validation"]["accuracy"] >= 0.6
