"""Accuracy on real speakers a recipe never trained on, through `keywire evaluate`'s code path.

Builds (once) a Speech Commands-layout folder of symlinks holding every clip of the recipe's
held-out test speakers in its first data folder (the real recordings) (all words: non-keywords count as `_unknown_`), then evaluates each
given model on it and prints one line per model. Usage (from the repository root):

    .venv/bin/python benchmarks/heldout_eval.py training/recipes/on_off.toml MODEL [MODEL ...]

MODEL: a .tflite, a keywire model directory or an MLTK .mltk.zip (e.g. ../shared/data/mltk_models/...).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from keywire.training.dataset import _scan_folder
from keywire.training.evaluate import evaluate_folder, load_any_model
from keywire.training.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def heldout_folder(recipe_path: str) -> Path:
    """Symlink farm of the recipe's test-split clips (all words) under .cache/heldout/<name>."""
    r = load_recipe(recipe_path)
    out = REPO / ".cache" / "heldout" / f"{r.name}-{r.fingerprint()}"
    if (out / ".complete").exists():
        return out
    for root in r.data[:1]:  # the first data folder holds the real speakers
        for path, word, _spk, split in _scan_folder(Path(root), r.replace(keywords=r.keywords), []):
            if split != "test":
                continue
            dst = out / word / Path(path).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(path)
    (out / ".complete").write_text("ok\n")
    return out


def main(argv: list[str]) -> int:
    folder = heldout_folder(argv[0])
    counts = {d.name: len(list(d.glob("*.wav"))) for d in sorted(folder.iterdir()) if d.is_dir()}
    print(f"held-out folder {folder}: {sum(counts.values())} clips {counts}")
    for m in argv[1:]:
        model = load_any_model(m)
        t = time.monotonic()
        r = evaluate_folder(model, folder)
        per = {k: round(v * 100, 1) for k, v in r.per_class().items()}
        print(f"{m}: accuracy {r.accuracy * 100:.1f}% n={len(r.truth)} classes={list(model.classes)} "
              f"bytes={model.size} per_class={json.dumps(per)} ({time.monotonic() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
