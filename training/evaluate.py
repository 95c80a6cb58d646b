"""`keywire evaluate`: accuracy of a .tflite through the agent's own frontend and runtime.

Each clip is read, resampled to the model's rate, centred in `fe.sample_length_ms`, turned
into features by `keywire.agent.frontend.compute_features` (fresh state, as MLTK does) and
scored by `keywire.agent.model.KeywordModel.infer`: the device's code path. Works on keywire
model directories, plain .tflite files with SL_PARAMSv1 (MLTK's) and `.mltk.zip` archives.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from keywire.protocol.errors import AudioError, ModelError
from keywire.agent.model import KeywordModel

from .audio import fit_length, load_clip
from .dataset import UNKNOWN, scan_eval_folder

if TYPE_CHECKING:  # pragma: no cover
    from .eval_split import Selection


@dataclass(frozen=True)
class EvalItem:
    """One labelled clip; `audio()` returns int16 samples at the model's rate."""

    name: str
    label: str
    audio: Callable[[], np.ndarray]


@dataclass
class EvalResult:
    classes: tuple[str, ...]          # the model's classes (columns of the confusion matrix)
    labels: tuple[str, ...]           # true labels (rows): classes plus any the model lacks
    truth: list[str]
    predicted: list[str]
    scores: np.ndarray                # uint8 [n, len(classes)]
    names: list[str]
    skipped: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(np.mean([t == p for t, p in zip(self.truth, self.predicted)])) if self.truth else 0.0

    def confusion(self) -> np.ndarray:
        cols = list(self.classes) + [c for c in self.labels if c not in self.classes]
        m = np.zeros((len(self.labels), len(cols)), dtype=np.int64)
        for t, p in zip(self.truth, self.predicted):
            m[self.labels.index(t), cols.index(p)] += 1
        return m

    def per_class(self) -> dict[str, float]:
        out = {}
        for k in self.labels:
            idx = [i for i, t in enumerate(self.truth) if t == k]
            if idx:
                out[k] = float(np.mean([self.predicted[i] == k for i in idx]))
        return out

    def precision_recall(self) -> dict[str, dict[str, float]]:
        out = {}
        for k in self.classes:
            tp = sum(1 for t, p in zip(self.truth, self.predicted) if t == k and p == k)
            fp = sum(1 for t, p in zip(self.truth, self.predicted) if t != k and p == k)
            fn = sum(1 for t, p in zip(self.truth, self.predicted) if t == k and p != k)
            out[k] = {"precision": tp / (tp + fp) if tp + fp else 0.0,
                      "recall": tp / (tp + fn) if tp + fn else 0.0}
        return out

    def roc_auc(self) -> dict[str, Optional[float]]:
        """One-vs-rest ROC AUC per class from the uint8 scores (None when a class has no
        positives or no negatives)."""
        out: dict[str, Optional[float]] = {}
        truth = np.array(self.truth)
        for j, k in enumerate(self.classes):
            pos = truth == k
            out[k] = _auc(self.scores[:, j].astype(np.float64), pos) if 0 < pos.sum() < len(pos) else None
        return out

    def summary(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "n": len(self.truth), "classes": list(self.classes),
                "labels": list(self.labels), "per_class": self.per_class(),
                "confusion_matrix": self.confusion().tolist(),
                "confusion_matrix_columns": list(self.classes) + [c for c in self.labels if c not in self.classes],
                "roc_auc": self.roc_auc(), "precision_recall": self.precision_recall(),
                "skipped": list(self.skipped)}


def _auc(score: np.ndarray, pos: np.ndarray) -> float:
    """Mann-Whitney ROC AUC with ties counted half."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def load_any_model(path: Path | str) -> KeywordModel:
    """A `KeywordModel` from a .tflite, a keywire model directory, or an MLTK `.mltk.zip`."""
    p = Path(path)
    if p.is_dir():
        cands = sorted(q for q in p.glob("*.tflite") if not q.name.endswith(".float.tflite"))
        if not cands:
            raise ModelError(f"{p} holds no int8 .tflite model")
        return KeywordModel.load(cands[0])
    if p.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.endswith(".tflite")]
                if not names:
                    raise ModelError(f"{p} holds no .tflite model")
                return KeywordModel.from_bytes(z.read(sorted(names)[0]), source=f"{p}:{sorted(names)[0]}")
        except zipfile.BadZipFile as exc:
            raise ModelError(f"{p} is not a readable zip archive") from exc
    return KeywordModel.load(p)


def predict(model: KeywordModel, samples: np.ndarray) -> np.ndarray:
    """uint8 scores for one clip through the agent's frontend and model."""
    from keywire.agent.frontend import compute_features

    fe = model.frontend
    if fe.frontend_type == "speech_embedding":  # a head: the clip in its own background
        from .embeddings import eval_embeddings

        return model.infer(eval_embeddings(samples, model.window_shape[0], fe.sample_length))
    x = fit_length(samples, fe.sample_length)
    return model.infer(compute_features(x, fe))


def evaluate_clips(model: KeywordModel, items: Sequence[EvalItem],
                   progress: Optional[Callable[[int, int], None]] = None) -> EvalResult:
    """Score every item; unreadable clips are skipped and named."""
    classes = tuple(model.classes)
    single = len(classes) == 1  # binary model: score > 127 means the keyword
    truth, pred, scores, names, skipped = [], [], [], [], []
    for i, it in enumerate(items):
        try:
            s = predict(model, it.audio())
        except AudioError as exc:
            skipped.append(str(exc))
            continue
        scores.append(s)
        truth.append(it.label)
        if single:
            pred.append(classes[0] if int(s[0]) > 127 else UNKNOWN)
        else:
            pred.append(classes[int(np.argmax(s))])
        names.append(it.name)
        if progress:
            progress(i + 1, len(items))
    if single:
        truth = [t if t == classes[0] else UNKNOWN for t in truth]
    labels = tuple(list(classes) + sorted({t for t in truth if t not in classes}))
    return EvalResult(classes, labels, truth, pred,
                      np.array(scores, dtype=np.uint8).reshape(-1, len(classes)), names, skipped)


def evaluate_folder(model: KeywordModel, folder: Path | str,
                    progress: Optional[Callable[[int, int], None]] = None) -> EvalResult:
    """Evaluate on a Speech Commands-layout folder (other words count as `_unknown_`)."""
    rate = model.frontend.sample_rate_hz
    files, skipped = scan_eval_folder(Path(folder), model.classes)
    items = [EvalItem(p, label, (lambda p=p: load_clip(p, rate))) for p, label in files]
    r = evaluate_clips(model, items, progress)
    r.skipped = skipped + r.skipped
    return r


def evaluate_selection(model: KeywordModel, selection: "Selection",
                       progress: Optional[Callable[[int, int], None]] = None) -> EvalResult:
    """Evaluate the clips `eval_split.select` chose (one split of the recipe's speakers, or all)."""
    rate = model.frontend.sample_rate_hz
    items = [EvalItem(c.path, c.label, (lambda p=c.path: load_clip(p, rate))) for c in selection.clips]
    r = evaluate_clips(model, items, progress)
    r.skipped = list(selection.skipped) + r.skipped
    return r


def format_report(r: EvalResult) -> str:
    """Human-readable accuracy lines for the CLI."""
    lines = [f"accuracy {r.accuracy * 100:.1f}% on {len(r.truth)} clips"]
    auc = r.roc_auc()
    for k, v in r.per_class().items():
        n = sum(1 for t in r.truth if t == k)
        a = auc.get(k)
        lines.append(f"  {k:<12} {v * 100:6.1f}%  n={n:<5}" + (f" auc={a:.3f}" if a is not None else ""))
    for s in r.skipped:
        lines.append(f"skipped {s}")
    return "\n".join(lines)


def save_json(r: EvalResult, path: Path | str, model: Optional[KeywordModel] = None) -> None:
    d = r.summary()
    if model is not None:
        d["model"] = {"name": model.name, "source": model.source, "sha256": model.sha256, "bytes": model.size}
    Path(path).write_text(json.dumps(d, indent=2) + "\n")


def save_plots(r: EvalResult, folder: Path | str, prefix: str = "") -> list[Path]:
    """confusion_matrix.png, roc.png, precision_recall.png (see `keywire.training.plots`)."""
    from .plots import save_plots as save

    return save(r, folder, prefix)


def read_report(path: Path | str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())

