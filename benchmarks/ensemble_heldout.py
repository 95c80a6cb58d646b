"""What averaging trained models buys on the held-out speakers: each member's accuracy and
the mean / min / max accuracy of every k-member average (k = 1..5), separately for members of
one architecture and for mixes. Members are the Keras models of keywire model directories (an
ensemble directory contributes each of its members); scores are the float models' softmax on
the agent frontend's int8 features. Usage (from the repository root):

    .venv/bin/python benchmarks/ensemble_heldout.py training/recipes/speech12.toml MODEL_DIR [MODEL_DIR ...]
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_eval import heldout_folder  # noqa: E402

from keywire.agent.frontend import compute_features, to_model_input  # noqa: E402
from keywire.agent.model import KeywordModel  # noqa: E402
from keywire.training.audio import load_clip  # noqa: E402
from keywire.training.dataset import scan_eval_folder  # noqa: E402


def main(argv: list[str]) -> int:
    import keras

    folder = heldout_folder(argv[0])
    dirs = [Path(d) for d in argv[1:]]
    ref = KeywordModel.load(next(p for p in dirs[0].glob("*.tflite") if not p.name.endswith(".float.tflite")))
    files, _ = scan_eval_folder(folder, ref.classes)
    fe = ref.frontend
    x = np.stack([to_model_input(compute_features(load_clip(p, fe.sample_rate_hz), fe), fe) for p, _ in files])
    x = x.astype(np.float32)[..., None]
    y = np.array([ref.classes.index(label) for _, label in files])
    scores: dict[str, np.ndarray] = {}
    arch: dict[str, str] = {}
    for d in dirs:
        m = keras.models.load_model(next(d.glob("*.keras")), compile=False)
        subs = [layer for layer in m.layers if layer.name.startswith("member")] or [m]
        for i, s in enumerate(subs):
            key = f"{d.name}#{i}"
            scores[key] = s(x).numpy()
            # BC-ResNet members have frequency-wise depthwise layers; every other member here is one kind
            arch[key] = "bc_resnet" if any("fdw" in layer.name for layer in s.layers) else "other"
            print(f"{key}: {_acc([scores[key]], y):.1f}% ({arch[key]})")

    for k in range(1, min(5, len(scores)) + 1):
        for label, keep in (("one architecture", lambda c: len({arch[m] for m in c}) == 1),
                            ("mixed", lambda c: len({arch[m] for m in c}) > 1)):
            vals = [_acc([scores[m] for m in c], y) for c in itertools.combinations(scores, k) if keep(c)]
            if vals:
                print(f"{k} members, {label}: mean {np.mean(vals):.1f}% min {min(vals):.1f}% max {max(vals):.1f}% "
                      f"({len(vals)} combinations)")
    return 0


def _acc(members: list[np.ndarray], y: np.ndarray) -> float:
    return 100.0 * float(np.mean(np.mean(members, axis=0).argmax(1) == y))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
