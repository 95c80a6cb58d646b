"""Recipes: TOML parsing, CLI overrides, and errors that name the field."""
from __future__ import annotations

from pathlib import Path

import pytest

from keywire.protocol.errors import ConfigError
from keywire.training.recipe import (Recipe, apply_overrides, from_dict, load_recipe,
                                     parse_cli_overrides)

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


def test_bundled_recipes_load_and_resolve_data_paths() -> None:
    for p in sorted((REPO / "training" / "recipes").glob("*.toml")):
        r = load_recipe(p)
        assert r.keywords and r.classes[: len(r.keywords)] == r.keywords
        assert all(Path(d).is_absolute() for d in r.data)


def test_recipe_round_trips_through_toml(tmp_path: Path) -> None:
    r = from_dict({"name": "x", "data": ["/d"], "keywords": ["on", "off"], "epochs": 3,
                   "frontend": {"window_step_ms": 20, "fe.filterbank_n_channels": 40},
                   "augmentation": {"copies": 2, "speed": [0.8, 1.2]},
                   "model_options": {"filters": [8, 8, 8]}})
    assert r.frontend.window_step_ms == 20 and r.frontend.filterbank_n_channels == 40
    assert r.classes == ("on", "off", "_unknown_", "_silence_")
    again = load_recipe(write(tmp_path, r.to_toml()))
    assert again.to_dict() == r.to_dict()


def test_cli_overrides_set_nested_fields() -> None:
    r = Recipe(data=("/d",), keywords=("a",))
    o = parse_cli_overrides(["--epochs", "7", "--augmentation.copies=1", "--frontend.pcan-enable", "true",
                             "--keywords", "x,y", "--model_options.filters", "[4, 4, 4]"])
    r2 = apply_overrides(r, o)
    assert (r2.epochs, r2.augmentation.copies, r2.frontend.pcan_enable) == (7, 1, True)
    assert r2.keywords == ("x", "y") and r2.model_options == {"filters": [4, 4, 4]}


def test_ensemble_models_round_trip_and_plan_their_members(tmp_path: Path) -> None:
    from keywire.training.train import member_recipes

    r = from_dict({"data": ["/d"], "keywords": ["on"], "model": "tc_resnet", "model_options": {"width": 1.5},
                   "ensemble": 2, "seed": 7,
                   "ensemble_models": [{"model": "bc_resnet", "width": 3.0, "time_stride": 2}]})
    again = load_recipe(write(tmp_path, r.to_toml()))
    assert again.to_dict() == r.to_dict()
    plan = member_recipes(r)
    assert [(m.model, dict(m.model_options), m.seed) for m in plan] == [
        ("tc_resnet", {"width": 1.5}, 7), ("tc_resnet", {"width": 1.5}, 8),
        ("bc_resnet", {"width": 3.0, "time_stride": 2}, 9)]
    cli = apply_overrides(Recipe(data=("/d",), keywords=("a",)),
                          parse_cli_overrides(["--ensemble_models", '[{model = "ds_cnn", filters = 32}]']))
    assert cli.ensemble_models == ({"model": "ds_cnn", "filters": 32},)
    for bad in ('[{width = 3.0}]', '"bc_resnet"', '[{model = "x"'):
        with pytest.raises(ConfigError, match="ensemble_models"):
            apply_overrides(cli, {"ensemble_models": bad})


@pytest.mark.parametrize("text, field", [
    ('keywords = ["a"]\ndata = ["."]\nepochs_ = 3\n', "epochs_"),
    ('keywords = ["a"]\ndata = ["."]\n[frontend]\nwindow_step = 20\n', "frontend.window_step"),
    ('keywords = ["a"]\ndata = ["."]\n[augmentation]\ncopies = "many"\n', "augmentation.copies"),
    ('keywords = []\ndata = ["."]\n', "keywords"),
    ('keywords = ["a"]\ndata = ["."]\nlr_schedule = "linear"\n', "lr_schedule"),
    ('keywords = ["a"]\ndata = ["."]\nvalidation_percentage = 60\ntesting_percentage = 50\n', "validation_percentage"),
    ('keywords = ["a"]\ndata = ["."]\n[frontend]\nfilterbank_upper_band_limit = 9000.0\n', "upper_band_limit"),
    ('keywords = ["a"]\ndata = ["."]\nclass_weight_scale = { _unknwn_ = 2.0 }\n', "class_weight_scale"),
    ('keywords = ["a"]\ndata = ["."]\nclass_weight_scale = { a = 0 }\n', "class_weight_scale.a"),
    ('keywords = ["a"]\ndata = ["."]\nclass_weight_scale = { a = "x" }\n', "class_weight_scale.a"),
    ('keywords = ["a"]\ndata = ["."]\nclass_weight_scale = { a = nan }\n', "class_weight_scale.a"),
    ('keywords = ["a"]\ndata = ["."]\nclass_weight_scale = 2.0\n', "class_weight_scale"),
])
def test_recipe_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, text))
    assert field in str(e.value) and "\n" not in str(e.value)


def test_typo_gets_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_recipe(write(tmp_path, 'keywords = ["a"]\ndata = ["."]\nepochz = 3\n'))
    with pytest.raises(ConfigError, match="did you mean --batch_size"):
        parse_cli_overrides(["--batch_sise", "3"])


def test_class_weight_scale_round_trips_and_multiplies_the_balanced_weights(tmp_path: Path) -> None:
    import numpy as np

    from keywire.training.train import class_weights, weight_scale

    r = from_dict({"data": ["/d"], "keywords": ["on", "off"], "class_weight_scale": {"_unknown_": 2.0}})
    again = load_recipe(write(tmp_path, r.to_toml()))
    assert again.class_weight_scale == {"_unknown_": 2.0} and again.to_dict() == r.to_dict()
    cli = apply_overrides(r, parse_cli_overrides(["--class_weight_scale", "_unknown_=3, off=0.5"]))
    assert cli.class_weight_scale == {"_unknown_": 3.0, "off": 0.5}
    assert weight_scale(cli, cli.classes) == [1.0, 0.5, 3.0, 1.0]
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2, 3, 3])  # _unknown_ twice as frequent as the rest
    balanced = class_weights(y, 4, "balanced")
    scaled = class_weights(y, 4, "balanced", weight_scale(r, r.classes))
    assert np.allclose(balanced, [1.25, 1.25, 0.625, 1.25])
    assert np.allclose(scaled, [1.25, 1.25, 1.25, 1.25])
    assert np.allclose(class_weights(y, 4, "none", [1, 1, 2, 1]), [1, 1, 2, 1])
    with pytest.raises(ConfigError, match="CLASS=FACTOR"):
        apply_overrides(r, {"class_weight_scale": "_unknown_"})
