"""Which clips of an evaluation folder `keywire evaluate` scores, and why.

A model trained by keywire carries its recipe (`recipe.toml`, and `dataset.json` with the
speakers of each split, beside the .tflite). Scoring every clip of a folder the model partly
trained on flatters it: bundled speech12 scores 94.9% on the shared folder but 89% on the
speakers it never heard. So when the recipe is known, the clips are split by the recipe's own
speaker split and only the held-out (`test`) speakers are scored by default; `--split all`
scores everything and says that training speakers are included.

Folder layouts: Speech Commands (`<label>/<clip>.wav`, words the model lacks count as
`_unknown_`) or flat `<label>_<speaker>_<n>.wav` files (e.g. the Free Spoken Digit Dataset,
whose digit labels `0`-`9` also match a model's `zero`-`nine`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from keywire.protocol.errors import ConfigError

from .dataset import LAYOUTS, NOISE_DIR, SILENCE, SPLITS, UNKNOWN, flat_name, label_for, scan_eval_folder, speaker_of, split_of
from .recipe import Recipe, load_recipe

SPLIT_CHOICES = ("test", "validation", "train", "all")


@dataclass(frozen=True)
class LabelledClip:
    path: str
    label: str        # the model's class (or `_unknown_`)
    speaker: str


@dataclass(frozen=True)
class Selection:
    """The clips to score and one line saying which they are."""

    clips: list[LabelledClip]
    skipped: list[str]
    split: str          # test / validation / train / all
    note: str           # what was scored, for the user
    warning: str = ""   # e.g. training speakers included


def _label_for(word: str, classes: Sequence[str]) -> str:
    word = label_for(word, classes)
    if word in classes and not word.startswith("_"):
        return word
    if word == SILENCE and SILENCE in classes:
        return SILENCE
    return UNKNOWN


def scan_folder(root: Path, classes: Sequence[str]) -> tuple[list[LabelledClip], list[str]]:
    """Labelled clips of an evaluation folder in either layout; `ConfigError` naming the
    expected layouts when neither fits."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder ({LAYOUTS})")
    flat = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    has_class_dirs = any(d.is_dir() and d.name != NOISE_DIR and not d.name.startswith(".")
                         and any(f.suffix.lower() == ".wav" for f in d.iterdir()) for d in root.iterdir())
    if flat and not has_class_dirs:
        clips, bad = [], []
        for p in flat:
            named = flat_name(p.stem)
            if named is None:
                bad.append(p.name)
                continue
            clips.append(LabelledClip(str(p), _label_for(named[0], classes), named[1]))
        if not clips:
            raise ConfigError(f"{root}: no file is named <label>_<speaker>_<n>.wav, e.g. {bad[0]} ({LAYOUTS})")
        return clips, [f"{root / b}: not named <label>_<speaker>_<n>.wav" for b in bad]
    try:
        files, skipped = scan_eval_folder(root, classes)
    except ConfigError:
        raise ConfigError(f"{root} holds no WAV files in class folders ({LAYOUTS})") from None
    return [LabelledClip(p, _label_for(label, classes) if label != UNKNOWN else UNKNOWN, speaker_of(p))
            for p, label in files], skipped


@dataclass(frozen=True)
class ModelRecipe:
    """The recipe a model was trained with and the speakers of each of its splits."""

    recipe: Recipe
    source: Path
    speakers: dict[str, set[str]]


def find_recipe(model_path: Path, recipe_path: Optional[Path] = None) -> Optional[ModelRecipe]:
    """The given recipe, or the `recipe.toml` beside the model (a keywire model folder)."""
    folder = model_path if model_path.is_dir() else model_path.parent
    path = recipe_path or (folder / "recipe.toml")
    if not path.is_file():
        if recipe_path is not None:
            raise ConfigError(f"recipe {recipe_path} not found")
        return None
    speakers: dict[str, set[str]] = {}
    ds = path.parent / "dataset.json"
    if ds.is_file():
        try:
            speakers = {s: set(v) for s, v in json.loads(ds.read_text()).get("speakers", {}).items()}
        except (ValueError, AttributeError):
            speakers = {}
    return ModelRecipe(load_recipe(path), path, speakers)


def _list(root: Path, name: str) -> set[str]:
    f = root / name
    return {x.strip() for x in f.read_text().splitlines() if x.strip()} if f.is_file() else set()


def split_of_clip(clip: LabelledClip, root: Path, mr: ModelRecipe) -> str:
    """The split this clip's speaker had (or would have had) when the model was trained.

    A speaker the model trained on (per `dataset.json`) is `train` whatever the folder; a
    folder the recipe trained from uses the recipe's rule (list files or speaker hash). In any
    other folder a speaker `dataset.json` does not name was never heard: `test`. Without
    `dataset.json` the recipe's speaker hash decides, as training would have."""
    r = mr.recipe
    if clip.speaker in mr.speakers.get("train", set()):
        return "train"
    here = root.resolve()
    if any(Path(d).resolve() == here for d in r.train_data):
        return "train"
    if any(Path(d).resolve() == here for d in r.data):
        val, test = _list(root, "validation_list.txt"), _list(root, "testing_list.txt")
        if val or test:
            rel = Path(clip.path).resolve().relative_to(here).as_posix()
            return "validation" if rel in val else "test" if rel in test else "train"
        return split_of(clip.speaker, r.validation_percentage, r.testing_percentage, r.split_salt)
    if mr.speakers:
        return "validation" if clip.speaker in mr.speakers.get("validation", set()) else "test"
    return split_of(clip.speaker, r.validation_percentage, r.testing_percentage, r.split_salt)


def select(root: Path, classes: Sequence[str], mr: Optional[ModelRecipe], split: Optional[str]) -> Selection:
    """The clips of `root` to score for `split` (default: `test` with a recipe, else `all`)."""
    if split is not None and split not in SPLIT_CHOICES:
        raise ConfigError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    clips, skipped = scan_folder(Path(root), classes)
    if mr is None:
        if split not in (None, "all"):
            raise ConfigError(f"--split {split} needs the model's recipe (a keywire model folder holds "
                              "recipe.toml; or pass --recipe)")
        return Selection(clips, skipped, "all", f"all {len(clips)} clips (no recipe with the model: "
                         "its training speakers are unknown and may be among them)")
    split = split or "test"
    by = {s: [c for c in clips if split_of_clip(c, Path(root), mr) == s] for s in SPLITS}
    speakers = {s: len({c.speaker for c in by[s]}) for s in SPLITS}
    if split == "all":
        return Selection(clips, skipped, "all", f"all {len(clips)} clips",
                         f"--split all includes {len(by['train'])} clips of {speakers['train']} speaker(s) the model "
                         f"trained on (recipe {mr.source}): the accuracy is optimistic; the default scores "
                         "held-out speakers only")
    chosen = by[split]
    kind = {"test": "held-out test", "validation": "validation", "train": "training"}[split]
    note = (f"the {kind} split of the recipe's speaker split ({mr.source}): {len(chosen)} of {len(clips)} clips, "
            f"{speakers[split]} speaker(s); left out {len(clips) - len(chosen)} clips of other splits "
            "(--split all scores everything)")
    warning = ""
    if not chosen:
        warning = (f"no clip of {root} belongs to the {split} split of the recipe (all its speakers are in "
                   f"{', '.join(s for s in SPLITS if by[s]) or 'no split'}); use --split all to score them anyway")
    elif split == "train":
        warning = "--split train scores speakers the model trained on: the accuracy is optimistic"
    return Selection(chosen, skipped, split, note, warning)
