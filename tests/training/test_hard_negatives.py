"""Hard-negative mining: moments of keyword-free speech a first head fires on come back as
`_unknown_` examples of a second training run (`hard_negative_probability`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keywire.protocol.errors import ConfigError
from keywire.training.embeddings import SHIFTS, pick_windows
from keywire.training.hard_negatives import keyword_free_stream, mine, peaks
from keywire.training.recipe import dumps_toml, from_dict

from tests.fixtures.speech import read_wav, synthesize
from tests.training.test_embedding_train import HEAD_RECIPE


def test_peaks_keep_the_highest_window_of_each_run() -> None:
    top = np.array([0, .5, .9, .6, 0, 0, 0, 0, .7, 0, .8, 0, 0, 0, 0, .2])
    assert peaks(top, 0.5) == [2, 10]          # 8 and 10 are 2 apart: one run
    assert peaks(top, 0.5, gap=1) == [2, 8, 10]
    assert peaks(top, 0.95) == []


def test_mined_blocks_hold_every_training_window_around_the_peak() -> None:
    n, block = 6, 6 + SHIFTS - 1
    emb = np.zeros((60, 96), np.float32)
    emb[:, 0] = np.arange(60)                   # each embedding knows its index
    emb[30, 1] = 1.0                            # the moment a keyword "fires"

    def score(w: np.ndarray) -> np.ndarray:     # keyword 'yes' when the marked embedding is last
        p = w[:, -1, 1:2]
        return np.concatenate([p, 1 - p], axis=1)

    m = mine(score, emb, n, block, ["yes", "_unknown_"], ["yes"], 0.5)
    assert m.by_keyword == {"yes": 1} and m.windows_over == 1 and m.blocks.shape == (1, block, 96)
    ends = {int(w[-1, 0]) for w in (pick_windows(m.blocks, np.random.default_rng(s), n)[0] for s in range(200))}
    assert 30 in ends and min(ends) >= 28 and max(ends) <= 33   # windows 80 ms around the peak
    assert mine(score, emb, n, block, ["yes", "_unknown_"], ["yes"], 1.5).blocks.shape == (0, block, 96)


def test_keyword_free_stream_strings_recordings_with_faint_gaps(tmp_path: Path) -> None:
    a, b = synthesize("the weather is nice"), synthesize("seven apples")
    s = keyword_free_stream([a, b], seed=2)
    assert np.array_equal(s, keyword_free_stream([a, b], seed=2))
    n = len(read_wav(a)[0]) + len(read_wav(b)[0])
    assert 16000 * 0.6 + n + 16000 <= len(s) <= 16000 * 2.0 + n + 16000
    rms = float(np.sqrt(np.mean(s[:4000].astype(np.float64) ** 2)))
    assert 25 < rms < 45                        # -60 dBFS noise before the first, never zeros


@pytest.mark.parametrize("changes, words", [
    ({"hard_negative_probability": 1.5}, "within 0..1"),
    ({"hard_negative_probability": 0.3}, "speech_embedding"),
    ({"hard_negative_probability": 0.3, "frontend": {"type": "speech_embedding"}}, "background_speech"),
    ({"hard_negative_probability": 0.3, "frontend": {"type": "speech_embedding"}, "background_speech": ["x"],
      "unknown_class_percentage": 0.0}, "_unknown_ class"),
])
def test_bad_hard_negative_settings_are_named(changes: dict, words: str) -> None:
    r = from_dict({"data": ["x"], "keywords": ["yes"], **changes})
    with pytest.raises(ConfigError, match="hard_negative_probability") as err:
        r.validate()
    assert words in str(err.value)


def test_train_mines_keyword_free_speech_and_trains_again(keywire_cli, tiny_dataset: Path, tmp_path: Path) -> None:
    babble = synthesize("we walked to the market and bought seven apples, bread and a bottle of milk "
                        "before the rain came down over the hills", voice="en-us")
    recipe = tmp_path / "mined.toml"
    recipe.write_text(dumps_toml(dict(HEAD_RECIPE, data=[str(tiny_dataset)], epochs=4,
                                      background_speech=[str(babble)], hard_negative_probability=0.02)))
    r = keywire_cli("train", str(recipe), "--out", str(tmp_path / "m"), "--cache", str(tmp_path / "cache"),
                    "--quiet", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    mined = report["hard_negatives"]
    assert mined["events"] >= 1 and sum(mined["by_keyword"].values()) == mined["events"]
    assert set(mined["by_keyword"]) <= {"yes", "no"} and 0 < mined["stream_hours"] < 0.01
    assert "hard negatives:" in r.stderr and "training again with the hard negatives" in r.stderr
    counts = json.loads((tmp_path / "m" / "dataset.json").read_text())["counts"]["train"]
    plain = keywire_cli("train", str(recipe), "--out", str(tmp_path / "plain"), "--cache", str(tmp_path / "cache"),
                        "--hard_negative_probability", "0", "--epochs", "1", "--quiet", timeout=600)
    assert plain.returncode == 0, plain.stderr[-2000:]
    before = json.loads((tmp_path / "plain" / "dataset.json").read_text())["counts"]["train"]
    assert counts["_unknown_"] == before["_unknown_"] + mined["events"]
    assert "hard_negatives" not in json.loads((tmp_path / "plain" / "report.json").read_text())
