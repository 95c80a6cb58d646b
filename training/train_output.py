"""What `keywire train` prints: one line per epoch, a bar within the epoch, and warnings
when a result should not be trusted.

Keras's own progress output repeats metrics under two names (accuracy and
categorical_accuracy, lr and learning_rate) and is not readable in a log; `EpochLines` prints
each metric once per epoch instead, with a transient rich bar over the batches on a terminal.
`result_warnings` looks at the exported model's evaluation and says, in words, when it is a
majority-class model, when an evaluation split is empty, or when a keyword exists only in
`train_data` (which never reaches validation or test).
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Mapping, Optional, Sequence

# Names a metric also appears under (keras's metric name, the scheduler's key); kept once.
_DUPLICATES = ("categorical_accuracy", "binary_accuracy", "val_categorical_accuracy", "val_binary_accuracy", "lr")
MAJORITY_SHARE = 0.9  # predictions this concentrated on one class make a model suspect


def clean_history(history: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """The history with each metric once: accuracy / val_accuracy / loss / val_loss / learning_rate."""
    out = {k: [float(v) for v in vals] for k, vals in history.items() if k not in _DUPLICATES}
    if "learning_rate" not in out and "lr" in history:
        out["learning_rate"] = [float(v) for v in history["lr"]]
    return out


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float) -> str:
    """`epoch 3/40  loss 0.812  accuracy 71.2%  val_loss 0.905  val_accuracy 68.0%  lr 0.0060  12 s`"""
    parts = [f"epoch {epoch}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs and logs[key] is not None:
            v = float(logs[key])
            parts.append(f"{key} {v * 100:.1f}%" if key.endswith("accuracy") else f"{key} {v:.3f}")
    lr = logs.get("learning_rate", logs.get("lr"))
    if lr is not None:
        parts.append(f"lr {float(lr):.2g}")
    parts.append(f"{seconds:.0f} s")
    return "  ".join(parts)


def epoch_reporter(epochs: int, say: Callable[[str], None], quiet: bool = False) -> Any:
    """A keras callback printing `epoch_line` after each epoch (unless quiet) and drawing a bar
    over the epoch's batches on a terminal."""
    import keras

    from .progress import is_terminal

    class EpochLines(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._bar: Any = None
            self._task: Any = None
            self._t0 = 0.0

        def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
            self._t0 = time.monotonic()
            if quiet or not is_terminal():
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            steps = (self.params or {}).get("steps")
            self._bar = Progress(TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[loss]}"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("batches", total=steps, loss="")

        def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
            if self._bar is not None:
                loss = (logs or {}).get("loss")
                self._bar.update(self._task, completed=batch + 1,
                                 loss=f"loss {float(loss):.3f}" if loss is not None else "")

        def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
            if not quiet:
                say(epoch_line(epoch + 1, epochs, logs or {}, time.monotonic() - self._t0))

    return EpochLines()


def result_warnings(classes: Sequence[str], keywords: Sequence[str], report: Mapping[str, Any],
                    split_keywords: Mapping[str, Sequence[str]], train_only: Sequence[str],
                    recipe_hint: str = "") -> list[str]:
    """Plain-language warnings about a training result (see the module docstring).

    `split_keywords`: the keywords with clips in each evaluation split; `train_only`: keywords
    whose clips all come from `train_data` folders."""
    out: list[str] = []
    for split in ("validation", "test"):
        ev = report.get(split)
        missing = [k for k in keywords if k not in split_keywords.get(split, ())]
        why = ""
        if missing and any(k in train_only for k in missing):
            only = [k for k in missing if k in train_only]
            why = (f"keyword(s) {', '.join(map(repr, only))} exist only in train_data (folders that only ever "
                   f"train), so the {split} split has none of them")
        if ev is None or not ev.get("n"):
            reason = why or "no clip of the data falls into it (see validation_percentage / testing_percentage)"
            if why:
                reason += "; it draws _unknown_ and _silence_ in proportion to its keyword clips, so it is empty"
            out.append(f"the {split} split is empty: no {split} accuracy. Why: {reason}. Measure the model on "
                       "real recordings of the keyword (keywire record, then keywire evaluate).")
            continue
        if missing:
            out.append(f"the {split} accuracy ({ev['accuracy'] * 100:.1f}% on {ev['n']} clips) covers no clip of "
                       f"{', '.join(map(repr, missing))}: " + (why or "the data has none in that split") + ".")
        preds = ev.get("confusion_matrix")
        if preds:
            cols = ev.get("confusion_matrix_columns", list(classes))
            per_col = [sum(row[j] for row in preds) for j in range(len(cols))]
            total = sum(per_col)
            j = max(range(len(cols)), key=lambda c: per_col[c])
            truth = Counter({k: n for k, n in zip(ev.get("labels", cols), (sum(r) for r in preds))})
            keyword_cols = [c for c, k in enumerate(cols) if k in keywords]
            keyword_clips = sum(n for k, n in truth.items() if k in keywords)
            hint = recipe_hint or "Train longer or with a higher learning rate."
            if total >= 10 and per_col[j] / total >= MAJORITY_SHARE and len(truth) > 1 \
                    and truth.most_common(1)[0][1] / total < MAJORITY_SHARE:
                out.append(f"the model predicts {cols[j]!r} for {per_col[j] / total * 100:.0f}% of the {split} clips "
                           f"(accuracy {ev['accuracy'] * 100:.1f}%): a majority-class model that learned nothing "
                           "useful. " + hint)
            elif keyword_clips and not any(per_col[c] for c in keyword_cols):
                out.append(f"the model never predicts a keyword on the {split} clips (all {total} predictions are "
                           f"{' or '.join(cols[c] for c in range(len(cols)) if per_col[c])}, accuracy "
                           f"{ev['accuracy'] * 100:.1f}%): it learned nothing useful. " + hint)
    return out


def majority_hint(weight_averaging: float, epochs_run: int) -> str:
    """Why a short run can end as a majority-class model, when weight averaging is on."""
    if weight_averaging > 0:
        span = 1.0 / max(1e-9, 1.0 - weight_averaging)
        return (f"weight_averaging = {weight_averaging:g} averages the weights over about {span:.0f} steps, so "
                f"after {epochs_run} epoch(s) the exported (averaged) weights are still close to their random "
                "start: train more epochs or set weight_averaging = 0 for short runs.")
    return "Train longer or with a higher learning rate."
