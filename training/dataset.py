"""Speech Commands-layout datasets: scanning, class mapping and speaker-disjoint splits.

Layout: one folder per word, `_background_noise_/` with long noise recordings, optionally
`_silence_/` and `_unknown_/` folders, `validation_list.txt` / `testing_list.txt`. Words that
are not keywords feed `_unknown_`; `_silence_` is made of background-noise snippets and digital
silence. Without list files a clip's split comes from a hash of its speaker id (the part of
the file name before `_nohash_`), so one speaker never spans two splits.
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from keywire.protocol.errors import ConfigError

from .recipe import Recipe

log = logging.getLogger("keywire.training")

SPLITS = ("train", "validation", "test")
UNKNOWN, SILENCE, NOISE_DIR = "_unknown_", "_silence_", "_background_noise_"
SPEECH = "_speech_"  # the word of generated `_unknown_` windows of background speech
AUDIO_EXT = ".wav"
_MAX_HASH = 2 ** 27 - 1


@dataclass(frozen=True)
class Clip:
    """One example: a WAV file, or a generated one (`path` empty, `generated_seed` set):
    `_silence_` from background noise, or an `_unknown_` window of background speech."""

    path: str
    word: str
    label: str
    speaker: str
    split: str
    generated_seed: Optional[int] = None

    @property
    def is_generated(self) -> bool:
        return self.generated_seed is not None


@dataclass
class Dataset:
    """Clips per split with their class labels, the noise files, and what was skipped."""

    classes: tuple[str, ...]
    clips: dict[str, list[Clip]]
    noise_files: list[str]
    skipped: list[str] = field(default_factory=list)
    speech_files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: dict(Counter(c.label for c in self.clips[s])) for s in SPLITS}

    def summary(self) -> str:
        c = self.counts()
        rows = [f"{'class':<12}" + "".join(f"{s:>11}" for s in SPLITS)]
        for k in self.classes:
            rows.append(f"{k:<12}" + "".join(f"{c[s].get(k, 0):>11}" for s in SPLITS))
        return "\n".join(rows)


def speaker_of(filename: str) -> str:
    """Speaker id from a Speech Commands file name (`[word_]SPEAKER_nohash_N.wav`), else the stem."""
    stem = Path(filename).stem
    m = re.match(r"^(?:.*_)?([^_]+)_nohash_", stem)
    return m.group(1) if m else stem


def split_of(speaker: str, validation_pct: float, testing_pct: float, salt: str = "") -> str:
    """Speech Commands' stable hash split, keyed by speaker (same speaker, same split);
    a non-empty `salt` draws a different, equally stable split."""
    h = int(hashlib.sha1((salt + speaker).encode()).hexdigest(), 16)
    pct = (h % (_MAX_HASH + 1)) * (100.0 / _MAX_HASH)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "test"
    return "train"


def _read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def _scan_folder(root: Path, recipe: Recipe, skipped: list[str], field_name: str = "data",
                 split_to: Optional[str] = None) -> list[tuple[str, str, str, str]]:
    """(path, word, speaker, split) for every WAV under a dataset root (all in `split_to` when given)."""
    if not root.is_dir():
        raise ConfigError(f"recipe field '{field_name}': {root} is not a folder")
    val, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name == NOISE_DIR or d.name.startswith("."):
            continue
        files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        wavs = [p for p in files if p.suffix.lower() == AUDIO_EXT]
        for p in files:
            if p.suffix.lower() != AUDIO_EXT:
                skipped.append(f"{p}: not a WAV file")
        if not wavs:
            if d.name in recipe.keywords:
                raise ConfigError(f"recipe field 'keywords': class folder {d} holds no WAV files")
            log.warning("skipping empty class folder %s", d)
            continue
        for p in wavs:
            rel = f"{d.name}/{p.name}"
            spk = speaker_of(p.name)
            if split_to:
                split = split_to
            elif val or test:
                split = "validation" if rel in val else "test" if rel in test else "train"
            else:
                split = split_of(spk, recipe.validation_percentage, recipe.testing_percentage, recipe.split_salt)
            out.append((str(p), d.name, spk, split))
    for p in sorted(q for q in root.iterdir() if q.is_file() and q.suffix.lower() == AUDIO_EXT):
        named = flat_name(p.stem)  # a flat folder such as the Free Spoken Digit Dataset
        if named is None:
            skipped.append(f"{p}: not in a class folder and not named <label>_<speaker>_<n>.wav")
            continue
        word, spk = label_for(named[0], recipe.keywords), named[1]
        if split_to:
            split = split_to
        elif val or test:
            split = "validation" if p.name in val else "test" if p.name in test else "train"
        else:
            split = split_of(spk, recipe.validation_percentage, recipe.testing_percentage, recipe.split_salt)
        out.append((str(p), word, spk, split))
    return out


_FLAT = re.compile(r"^([^_]+)_(.+)_(\d+)$")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LAYOUTS = ("expected Speech Commands layout (<folder>/<label>/<clip>.wav, e.g. yes/0a7c2a8d_nohash_0.wav) "
           "or a flat folder of <label>_<speaker>_<n>.wav files (e.g. 0_jackson_0.wav)")


def flat_name(stem: str) -> Optional[tuple[str, str]]:
    """(label, speaker) of a flat `<label>_<speaker>_<n>` file name, else None."""
    m = _FLAT.match(stem)
    return (m.group(1), m.group(2)) if m else None


def label_for(label: str, classes: Sequence[str]) -> str:
    """A flat file's label as a class name: itself, or a digit's word (`1` -> `one`) when that
    is a class."""
    if label not in classes and len(label) == 1 and label.isdigit() and DIGIT_WORDS[int(label)] in classes:
        return DIGIT_WORDS[int(label)]
    return label


def noise_files(recipe: Recipe) -> list[str]:
    """Background-noise WAVs: each dataset's `_background_noise_` plus the recipe's folders."""
    dirs = [Path(d) / NOISE_DIR for d in recipe.data + recipe.train_data] + [Path(d) for d in recipe.background_noise]
    out: list[str] = []
    for d in dirs:
        if d.is_dir():
            out += [str(p) for p in sorted(d.glob("*")) if p.suffix.lower() == AUDIO_EXT]
        elif d.name != NOISE_DIR:
            raise ConfigError(f"recipe field 'background_noise': {d} is not a folder")
    return out


def speech_files(recipe: Recipe) -> list[str]:
    """Keyword-free background speech WAVs named by the recipe (files or folders)."""
    out: list[str] = []
    for f in map(Path, recipe.background_speech):
        if f.is_dir():
            out += [str(p) for p in sorted(f.glob("*")) if p.suffix.lower() == AUDIO_EXT]
        elif f.is_file() and f.suffix.lower() == AUDIO_EXT:
            out.append(str(f))
        else:
            raise ConfigError(f"recipe field 'background_speech': {f} is not a WAV file or folder")
    if recipe.background_speech and not out:
        raise ConfigError(f"recipe field 'background_speech': no WAV files in {list(recipe.background_speech)}")
    return out


def load_dataset(recipe: Recipe) -> Dataset:
    """Scan the recipe's data folders and build balanced splits; errors name the problem."""
    recipe.validate()
    skipped: list[str] = []
    entries: list[tuple[str, str, str, str]] = []
    for root in recipe.data:
        entries += _scan_folder(Path(root), recipe, skipped)
    for root in recipe.train_data:
        entries += _scan_folder(Path(root), recipe, skipped, "train_data", split_to="train")
    for s in skipped:
        log.warning("skipped %s", s)
    rng = random.Random(recipe.seed)
    by: dict[str, dict[str, list[Clip]]] = {s: defaultdict(list) for s in SPLITS}
    for path, word, spk, split in entries:
        if word in recipe.keywords:
            label = word
        elif word == SILENCE:
            label = SILENCE
        else:
            label = UNKNOWN
        by[split][label].append(Clip(path, word, label, spk, split))

    for k in recipe.keywords:
        if not any(by[s].get(k) for s in SPLITS):
            raise ConfigError(f"recipe field 'keywords': no samples for keyword {k!r} in {list(recipe.data)} "
                              f"({LAYOUTS})")
        if not by["train"].get(k):
            raise ConfigError(f"recipe field 'keywords': keyword {k!r} has no training samples")
    if (recipe.unknown_class_percentage > 0 and recipe.speech_unknown_percentage <= 0
            and not any(by[s].get(UNKNOWN) for s in SPLITS)):
        raise ConfigError("recipe field 'unknown_class_percentage' is above 0 but the data has no "
                          "non-keyword words for _unknown_ (add word folders or set it to 0)")

    noises = noise_files(recipe)
    speech = speech_files(recipe)
    if recipe.silence_class_percentage > 0 and not noises:
        log.warning("no background noise found: _silence_ will be digital silence and real _silence_ clips only")
    clips: dict[str, list[Clip]] = {}
    seed_base = recipe.seed * 1_000_003
    for split in SPLITS:
        groups = by[split]
        kw_counts = [len(groups.get(k, [])) for k in recipe.keywords]
        cap = recipe.max_clips_per_class
        out: list[Clip] = []
        for k in recipe.keywords:
            items = list(groups.get(k, []))
            if cap and len(items) > cap:
                items = rng.sample(items, cap)
            out += items
        mean_kw = (sum(min(c, cap) if cap else c for c in kw_counts) / max(1, len(kw_counts)))
        if recipe.unknown_class_percentage > 0:
            pool = list(groups.get(UNKNOWN, []))
            n = min(len(pool), int(round(mean_kw * recipe.unknown_class_percentage / 100)))
            out += rng.sample(pool, n)
            for i in range(int(round(mean_kw * recipe.speech_unknown_percentage / 100))):
                seed = seed_base + SPLITS.index(split) * 100_000 + 50_000 + i
                out.append(Clip("", SPEECH, UNKNOWN, f"speech{i}", split, generated_seed=seed))
        if recipe.silence_class_percentage > 0:
            want = int(round(mean_kw * recipe.silence_class_percentage / 100))
            real = list(groups.get(SILENCE, []))
            real = rng.sample(real, min(len(real), want // 2 if noises else want))
            out += real
            for i in range(want - len(real)):
                seed = seed_base + SPLITS.index(split) * 100_000 + i
                out.append(Clip("", SILENCE, SILENCE, f"silence{i}", split, generated_seed=seed))
        elif groups.get(SILENCE):
            pass  # no silence class: real _silence_ clips are not used
        rng.shuffle(out)
        clips[split] = out
    if not clips["validation"]:
        log.warning("validation split is empty: the best model is chosen on training accuracy")
    return Dataset(recipe.classes, clips, noises, skipped, speech)


def scan_eval_folder(root: Path, classes: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(path, true class) for an evaluation folder in Speech Commands layout.

    Words the model lacks count as `_unknown_`; `_silence_` maps to the model's silence class
    if it has one, else `_unknown_`. Non-WAV files are returned separately as skipped.
    """
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    cls = set(classes)
    out: list[tuple[str, str]] = []
    skipped: list[str] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name == NOISE_DIR or d.name.startswith("."):
            continue
        if d.name in cls and not d.name.startswith("_"):
            label = d.name
        elif d.name == SILENCE and SILENCE in cls:
            label = SILENCE
        else:
            label = UNKNOWN
        for p in sorted(d.iterdir()):
            if not p.is_file() or p.name.startswith("."):
                continue
            if p.suffix.lower() != AUDIO_EXT:
                skipped.append(f"{p}: not a WAV file")
                continue
            out.append((str(p), label))
    if not out:
        raise ConfigError(f"{root} holds no WAV files in class folders")
    return out, skipped


def iter_words(entries: Iterable[Clip]) -> Counter:
    return Counter(c.word for c in entries)
