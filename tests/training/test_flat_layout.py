"""Flat `<label>_<speaker>_<n>.wav` folders (e.g. the Free Spoken Digit Dataset) train like
Speech Commands folders; a layout that fits neither says which layouts are expected."""
from __future__ import annotations

from pathlib import Path

import pytest

from keywire.protocol.errors import ConfigError
from keywire.training.dataset import load_dataset
from keywire.training.recipe import from_dict

from tests.fixtures.speech import read_wav, synthesize, write_wav

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-029", "en-us-nyc")


def _flat(root: Path, labels: dict[str, str]) -> Path:
    for label, word in labels.items():
        for take, voice in enumerate(VOICES):
            x, rate = read_wav(synthesize(word, voice=voice))
            write_wav(root / f"{label}_{voice.replace('-', '').replace('+', '')}_{take}.wav", x, rate)
    return root


def test_flat_digit_folder_feeds_number_keywords(tmp_path: Path) -> None:
    root = _flat(tmp_path / "fsdd", {"1": "one", "2": "two", "7": "seven"})
    (root / "notes.wav").write_bytes(b"")  # neither a class folder nor a flat name: skipped, named
    r = from_dict({"name": "digits", "keywords": ["one", "two"], "data": [str(root)], "validation_percentage": 0,
                   "testing_percentage": 0, "silence_class_percentage": 0})
    ds = load_dataset(r)
    counts = ds.counts()["train"]
    assert counts["one"] == counts["two"] == len(VOICES) and counts["_unknown_"] > 0  # 7 -> _unknown_
    assert any("notes.wav" in s and "<label>_<speaker>_<n>.wav" in s for s in ds.skipped)
    assert {c.speaker for c in ds.clips["train"] if c.label == "one"} == {v.replace("-", "").replace("+", "")
                                                                           for v in VOICES}


def test_missing_keyword_names_the_expected_layouts(tmp_path: Path) -> None:
    root = _flat(tmp_path / "flat", {"1": "one"})
    r = from_dict({"name": "x", "keywords": ["three"], "data": [str(root)]})
    with pytest.raises(ConfigError, match=r"no samples for keyword 'three'.*Speech Commands layout.*"
                                          r"<label>_<speaker>_<n>\.wav"):
        load_dataset(r)
