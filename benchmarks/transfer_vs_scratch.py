"""Does transfer learning reach a validation accuracy in fewer epochs than training from scratch?

Same architecture, same data, same schedule; one run starts from a base model's weights (new
head), the other from fresh weights. Prints validation accuracy per epoch and the first epoch
each run reaches the target. Usage (from the repository root, niced):

    nice -n 10 .venv/bin/python benchmarks/transfer_vs_scratch.py BASE RECIPE.toml [--target 0.8] [--epochs 12]

BASE: keywire model folder, .keras, .h5 or .mltk.zip (MLTK's transfer-learning tutorial uses
../shared/data/mltk_models/keyword_spotting_mobilenetv2.mltk.zip). The recipe gives data and
keywords; the base's frontend settings are used for both runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("recipe")
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--learning-rate", type=float, default=0.002)
    ap.add_argument("--copies", type=int, default=2)
    a = ap.parse_args(argv)

    import keras

    from keywire.training import transfer as tr
    from keywire.training.recipe import load_recipe
    from keywire.training.train import check_recipe, train

    params, _shape = tr.peek_base(a.base)
    r = load_recipe(a.recipe)
    fe = tr.base_frontend(params) or r.frontend
    r = r.replace(frontend=fe, model="transfer", epochs=a.epochs, learning_rate=a.learning_rate,
                  warmup_epochs=0, early_stopping_patience=0,
                  augmentation=r.augmentation.__class__(**{**r.augmentation.__dict__, "copies": a.copies}))
    ds = check_recipe(r)
    base = tr.load_base(a.base)

    def scratch_factory(shape: tuple, n: int):
        fresh = keras.models.clone_model(base.model)  # same architecture, new random weights
        return tr.factory(tr.Base(fresh, base.params, "scratch"))(shape, n)

    results = {}
    for label, factory in (("transfer", tr.factory(base)), ("scratch", scratch_factory)):
        with tempfile.TemporaryDirectory() as d:
            t = time.monotonic()
            res = train(r.replace(name=label), Path(d), factory=factory, dataset=ds, verbose=0,
                        progress=lambda m: None)
            acc = res.history.get("val_accuracy", [])
            first = next((i + 1 for i, v in enumerate(acc) if v >= a.target), None)
            results[label] = {"val_accuracy": [round(v, 3) for v in acc], "epochs_to_target": first,
                              "test_accuracy": res.report.get("test", {}).get("accuracy"),
                              "seconds": round(time.monotonic() - t, 1)}
            print(f"{label}: epochs to val accuracy >= {a.target}: {first}; per epoch {results[label]['val_accuracy']}; "
                  f"test {results[label]['test_accuracy']}; {results[label]['seconds']} s", flush=True)
    print(json.dumps({"base": a.base, "keywords": list(r.keywords), "target": a.target, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
