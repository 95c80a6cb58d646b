"""Evaluation and training plots: confusion matrix, ROC, precision/recall, history.

Each `*_figure` function returns a matplotlib `Figure` (built without pyplot, so no global
state and no display backend), which `save_plots` / `save_history` write as PNG. Design
choices, for readers of the plots:

- class names that start with `_` (`_unknown_`, `_silence_`) are shown without the
  underscores: matplotlib silently leaves such labels out of legends;
- each legend entry carries the curve's area (ROC AUC, or average precision for PR);
- the ROC's false-positive axis is logarithmic: a keyword spotter lives at false-positive
  rates of 0.1-1%, which a linear axis squeezes into its first pixel;
- the confusion matrix is normalised per true class (row) and shows the count as well.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .evaluate import EvalResult


def display_label(name: str) -> str:
    """A class name matplotlib will show: `_unknown_` -> `unknown` (leading `_` hides a legend entry)."""
    shown = name.strip("_")
    return shown or name.replace("_", "-") or "?"


def _new_figure(width: float, height: float) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def curve(score: np.ndarray, pos: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest curve over every distinct score threshold: ROC (fpr, tpr) or PR (recall, precision)."""
    ths = np.unique(score)[::-1]
    tp = np.array([np.sum(pos & (score >= t)) for t in ths], dtype=np.float64)
    fp = np.array([np.sum(~pos & (score >= t)) for t in ths], dtype=np.float64)
    if kind == "roc":
        return np.r_[0, fp / max(1, (~pos).sum())], np.r_[0, tp / max(1, pos.sum())]
    return tp / max(1, pos.sum()), tp / np.maximum(tp + fp, 1)


def average_precision(score: np.ndarray, pos: np.ndarray) -> float:
    """Area under the precision/recall steps (sum of precision x recall increments)."""
    recall, precision = curve(score, pos, "pr")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _scored_classes(r: "EvalResult") -> list[tuple[int, str, np.ndarray]]:
    """(column, class, positives) for each class with both positives and negatives."""
    truth = np.array(r.truth)
    out = []
    for j, k in enumerate(r.classes):
        pos = truth == k
        if 0 < pos.sum() < len(pos):
            out.append((j, k, pos))
    return out


def _colours(ax, n: int) -> None:
    """Distinct colours for up to 20 curves (the default cycle repeats after 10)."""
    if n > 10:
        from matplotlib import colormaps

        ax.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(n)])


def roc_figure(r: "EvalResult") -> "Figure":
    """One-vs-rest ROC per class, false-positive rate on a log axis, AUC in the legend."""
    fig = _new_figure(7, 5.5)
    ax = fig.add_subplot()
    auc = r.roc_auc()
    floor = 1.0
    scored = _scored_classes(r)
    _colours(ax, len(scored))
    for j, k, pos in scored:
        fpr, tpr = curve(r.scores[:, j].astype(np.float64), pos, "roc")
        lowest = 0.5 / max(1, int((~pos).sum()))  # half of one false positive: where 0 is drawn
        floor = min(floor, lowest)
        ax.step(np.maximum(fpr, lowest), tpr, where="post", label=f"{display_label(k)} (AUC {auc[k]:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("false positive rate (log scale; 0 drawn at half of one false positive)")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, one class against the rest ({len(r.truth)} clips)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def pr_figure(r: "EvalResult") -> "Figure":
    """Precision against recall per class, average precision (AP) in the legend."""
    fig = _new_figure(7, 5.5)
    ax = fig.add_subplot()
    scored = _scored_classes(r)
    _colours(ax, len(scored))
    for j, k, pos in scored:
        s = r.scores[:, j].astype(np.float64)
        recall, precision = curve(s, pos, "pr")
        ax.step(recall, precision, where="post", label=f"{display_label(k)} (AP {average_precision(s, pos):.3f})")
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision / recall, one class against the rest ({len(r.truth)} clips)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def confusion_figure(r: "EvalResult") -> "Figure":
    """Confusion matrix normalised per true class: each cell the share of that row, and the count
    (true classes without clips are left out)."""
    full = r.confusion()
    cols = r.summary()["confusion_matrix_columns"]
    keep = full.sum(axis=1) > 0  # a class without clips has no row to normalise
    m, labels = full[keep], [k for k, kept in zip(r.labels, keep) if kept]
    rows = m.sum(axis=1, keepdims=True)
    share = m / np.maximum(rows, 1)
    cell = 0.9 if max(len(cols), len(labels)) <= 14 else 0.7
    fig = _new_figure(2.5 + cell * len(cols), 2.0 + cell * max(3, len(labels)))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(len(cols)), [display_label(c) for c in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [f"{display_label(k)} ({n})" for k, n in zip(labels, rows[:, 0])])
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] == 0:
                continue
            ax.text(j, i, f"{share[i, j] * 100:.0f}%\n{m[i, j]}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class (clips)")
    ax.set_title(f"accuracy {r.accuracy * 100:.1f}% on {len(r.truth)} clips (rows sum to 100%)")
    fig.tight_layout()
    return fig


def history_figure(history: Mapping[str, Sequence[float]], title: str) -> "Figure":
    """Loss and accuracy per epoch, training and validation; markers so one epoch shows too."""
    fig = _new_figure(10, 4)
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            vals = history.get(prefix + key)
            if vals:
                ax.plot(range(1, len(vals) + 1), vals, style, markersize=4,
                        label=("validation " if prefix else "training ") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        n = max((len(history.get(p + key) or ()) for p in ("", "val_")), default=0)
        if n <= 1:
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig: "Figure", path: Path, dpi: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def save_plots(r: "EvalResult", folder: Path | str, prefix: str = "") -> list[Path]:
    """confusion_matrix.png, roc.png, precision_recall.png (each name after `prefix`) in `folder`."""
    out = Path(folder)
    figures = (("confusion_matrix", confusion_figure), ("roc", roc_figure), ("precision_recall", pr_figure))
    return [save_figure(make(r), out / f"{prefix}{name}.png") for name, make in figures]


def save_history(history: Mapping[str, Sequence[float]], path: Path, title: str,
                 dpi: Optional[int] = None) -> Path:
    return save_figure(history_figure(history, title), Path(path), dpi or 80)
