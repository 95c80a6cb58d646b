"""Speech Commands-layout scanning: classes, speaker-disjoint splits, bad input."""
from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from keywire.protocol.errors import ConfigError
from keywire.training.dataset import SPLITS, load_dataset, scan_eval_folder, speaker_of, split_of
from keywire.training.recipe import Recipe


def recipe(data: Path, **kw) -> Recipe:
    base = dict(data=(str(data),), keywords=("yes", "no"), validation_percentage=20.0, testing_percentage=20.0)
    base.update(kw)
    return Recipe(**base)


@pytest.fixture()
def unlisted(tiny_dataset: Path, tmp_path: Path) -> Path:
    """The tiny dataset without its validation list (hash split)."""
    d = tmp_path / "ds"
    shutil.copytree(tiny_dataset, d, ignore=shutil.ignore_patterns("validation_list.txt", ".complete"))
    return d


def test_speaker_ids_follow_speech_commands_names() -> None:
    assert speaker_of("0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert speaker_of("backward_0cb74144_nohash_2.wav") == "0cb74144"
    assert speaker_of("1024.wav") == "1024"
    assert split_of("abc", 10, 10) == split_of("abc", 10, 10)
    assert {split_of(f"s{i}", 10, 10, "x") for i in range(200)} == set(SPLITS)


def test_hash_split_keeps_each_speaker_in_one_split(unlisted: Path) -> None:
    ds = load_dataset(recipe(unlisted))
    where = defaultdict(set)
    for s in SPLITS:
        for c in ds.clips[s]:
            if not c.is_generated:
                where[c.speaker].add(s)
    assert where and all(len(v) == 1 for v in where.values())
    assert all(ds.clips[s] for s in SPLITS)
    assert ds.classes == ("yes", "no", "_unknown_", "_silence_")


def test_validation_list_is_honoured(tiny_dataset: Path) -> None:
    listed = set((tiny_dataset / "validation_list.txt").read_text().split())
    ds = load_dataset(recipe(tiny_dataset, unknown_class_percentage=1000.0))
    val = {f"{Path(c.path).parent.name}/{Path(c.path).name}" for c in ds.clips["validation"] if c.path}
    assert val and val <= listed
    assert not ds.clips["test"] or all(c.is_generated for c in ds.clips["test"])


def test_unknown_and_silence_percentages(unlisted: Path) -> None:
    ds = load_dataset(recipe(unlisted, unknown_class_percentage=50.0, silence_class_percentage=100.0))
    c = ds.counts()["train"]
    mean_kw = (c["yes"] + c["no"]) / 2
    assert abs(c["_unknown_"] - 0.5 * mean_kw) <= 1
    assert abs(c["_silence_"] - mean_kw) <= 1
    ds0 = load_dataset(recipe(unlisted, unknown_class_percentage=0.0, silence_class_percentage=0.0))
    assert ds0.classes == ("yes", "no") and set(ds0.counts()["train"]) == {"yes", "no"}


def test_non_wav_files_are_reported_by_name(unlisted: Path) -> None:
    (unlisted / "yes" / "notes.txt").write_text("hello")
    ds = load_dataset(recipe(unlisted))
    assert any("notes.txt" in s for s in ds.skipped)


def test_empty_keyword_folder_is_an_error(unlisted: Path) -> None:
    shutil.rmtree(unlisted / "no")
    (unlisted / "no").mkdir()
    with pytest.raises(ConfigError, match="keywords.*no.*holds no WAV"):
        load_dataset(recipe(unlisted))


def test_keyword_without_samples_is_an_error(unlisted: Path) -> None:
    with pytest.raises(ConfigError, match="no samples for keyword 'maybe'"):
        load_dataset(recipe(unlisted, keywords=("yes", "maybe")))


def test_missing_unknown_words_is_an_error(tmp_path: Path, tiny_dataset: Path) -> None:
    d = tmp_path / "two"
    for w in ("yes", "no"):
        shutil.copytree(tiny_dataset / w, d / w)
    with pytest.raises(ConfigError, match="unknown_class_percentage"):
        load_dataset(recipe(d))
    assert load_dataset(recipe(d, unknown_class_percentage=0.0)).classes == ("yes", "no", "_silence_")


def test_missing_data_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'data'.*not a folder"):
        load_dataset(recipe(tmp_path / "nope"))


def test_train_data_only_ever_trains(unlisted: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    extra = tmp_path / "synthetic"
    shutil.copytree(tiny_dataset / "yes", extra / "yes")
    ds = load_dataset(recipe(unlisted, train_data=(str(extra),)))
    mine = {str(p) for p in (extra / "yes").glob("*.wav")}
    where = {s for s in SPLITS for c in ds.clips[s] if c.path in mine}
    assert where == {"train"}
    assert len([c for c in ds.clips["train"] if c.path in mine]) == len(mine)
    # the same folder as ordinary data is split by speaker like any other
    mixed = load_dataset(recipe(unlisted).replace(data=(str(unlisted), str(extra))))
    assert {s for s in SPLITS for c in mixed.clips[s] if c.path in mine} - {"train"}
    with pytest.raises(ConfigError, match="'train_data'.*not a folder"):
        load_dataset(recipe(unlisted, train_data=(str(tmp_path / "nope"),)))


def test_eval_folder_maps_other_words_to_unknown(tiny_dataset: Path) -> None:
    files, skipped = scan_eval_folder(tiny_dataset, ("yes", "no", "_unknown_"))
    labels = {Path(p).parent.name: l for p, l in files}
    assert labels["yes"] == "yes" and labels["cat"] == "_unknown_" and labels["up"] == "_unknown_"
    assert not skipped
