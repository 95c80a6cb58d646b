"""Tables and warnings of the `keywire` CLI, drawn with rich.

Every table says in its caption what its abbreviated headers mean, so a first-time reader
does not need the docs to read `FRR@1` or `FA/h bg`. Tables go to stdout, warnings and
progress to stderr; without a terminal rich prints plain text (no colour codes).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # pragma: no cover
    from keywire.training.calibrate import Calibration
    from keywire.training.evaluate import EvalResult
    from keywire.training.stream_eval import StreamReport

_WIDE = 160  # without a terminal (pipes, tests) do not wrap tables at 80 columns


def out() -> Console:
    """The console for results (stdout)."""
    c = Console(soft_wrap=False, highlight=False)
    if not c.is_terminal:
        c = Console(soft_wrap=False, highlight=False, width=_WIDE)
    return c


def err() -> Console:
    """The console for progress and warnings (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning line on stderr: something the user should know that is not an error."""
    err().print(f"[bold yellow]warning:[/] {message}", markup=True)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "",
          right_from: int = 1, right: Optional[Sequence[int]] = None) -> Table:
    """Columns from `right_from` on (or those in `right`) are right-aligned (numbers)."""
    t = Table(title=title or None, caption=caption or None, caption_justify="left", title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="right" if (i in right if right is not None else i >= right_from) else "left")
    for r in rows:  # cells are plain text: a `[` in a device's or a class's name is not rich markup
        t.add_row(*[v if isinstance(v, Text) else Text(str(v)) for v in r])
    return t


def show(t: Table, console: Optional[Console] = None) -> None:
    """Print a table, then its caption (the legend of its headers) as a full-width paragraph."""
    c = console or out()
    legend, t.caption = t.caption, None
    c.print(t)
    if legend:
        c.print(str(legend), style="dim", soft_wrap=False, width=min(c.width, 110))


def render_text(t: Table) -> str:
    """A table and its caption as plain text (no colour codes), e.g. for a caller that prints it."""
    import io

    buf = io.StringIO()
    show(t, Console(file=buf, width=_WIDE, soft_wrap=False, highlight=False, color_system=None))
    return buf.getvalue().rstrip("\n")


def pct(v: Optional[float]) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * 100:.1f}%"


def eval_table(r: "EvalResult", title: str) -> Table:
    """Per-class accuracy of a clip evaluation."""
    auc = r.roc_auc()
    pr = r.precision_recall()
    counts = {k: sum(1 for t in r.truth if t == k) for k in r.labels}
    rows = []
    for k, acc in r.per_class().items():
        a = auc.get(k)
        rows.append((k, counts[k], pct(acc), pct(pr[k]["precision"]) if k in pr else "n/a",
                     f"{a:.3f}" if a is not None else "n/a"))
    return table(title, ("class", "clips", "recall", "precision", "ROC AUC"), rows,
                 caption="recall: share of the class's clips predicted as that class (its accuracy); precision: "
                         "share of clips predicted as the class that are it; ROC AUC: 1.0 = the class's score "
                         "ranks all its clips above all others, 0.5 = chance")


def stream_table(report: "StreamReport") -> Table:
    """`evaluate-stream`: one row per condition and keyword."""
    targets = [f"{t:g}" for t in report.plan.get("targets", (1.0, 0.1))]
    cols = ["condition", "keyword", "n", "recall", "FA/h", "FA/h bg"] + [f"FRR@{t}" for t in targets] + \
        ["lat med", "lat p90"]
    rows = []
    for cond, res in report.conditions.items():
        for kw, r in res.items():
            at = [pct(r.at_targets[t]["frr"]) if t in r.at_targets else "n/a" for t in targets]
            lat = [("n/a" if math.isnan(r.latency_ms[k]) else f"{r.latency_ms[k]:.0f} ms") for k in ("median", "p90")]
            rows.append((cond, kw, r.occurrences, pct(r.recall), f"{r.fa_per_hour:.2f}",
                         f"{r.fa_per_hour_background:.2f}", *at, *lat))
    caption = ("condition: snrX = keywords X dB above the background (_gapA-B: other spacing); n: keyword "
               "occurrences; recall: share detected with the model's own settings; FA/h: false accepts per "
               "hour in these streams; FA/h bg: per hour of keyword-free background; FRR@T: share of keywords "
               "missed at the threshold that gives T false accepts per hour of background; lat med / lat p90: "
               "median and 90th percentile delay from the end of the keyword to the detection")
    return table(f"streaming evaluation of {report.model.get('name', 'model')}", cols, rows, caption, right_from=2)


def calibration_table(cal: "Calibration") -> Table:
    rows = [(c.keyword, c.threshold, pct(c.frr), f"{c.fa_per_hour:.2f}") for c in cal.choices]
    d = cal.detection
    return table(f"calibrated: window {d.average_window_duration_ms} ms, minimum_count {d.minimum_count}",
                 ("keyword", "threshold", "FRR", "FA/h"), rows,
                 caption=f"threshold: score 0-255 to fire; FRR: share of keywords missed (false rejects) in the "
                         f"positive streams; FA/h: false accepts per hour of the {cal.hours:.2f} h of background; "
                         f"budget {cal.budget_fa_per_hour:g} FA/h per keyword")


class DeviceProgress:
    """Per-device push progress: one bar per device on a terminal (chunks received), otherwise
    one line per change of state (not one per chunk)."""

    def __init__(self, enabled: bool = True) -> None:
        self._console = err()
        self._live = enabled and self._console.is_terminal
        self._enabled = enabled
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, tuple[str, str]] = {}
        self._bars: Any = None
        if self._live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[state]}"), console=self._console)
            self._bars.start()

    def update(self, device: str, state: str, received: int, total: int, reason: str) -> None:
        """`device`, `state` and `reason` must already be safe to print."""
        if not self._enabled:
            return
        shown = state + (f" - {reason}" if reason else "")
        if self._bars is not None:
            if device not in self._tasks:
                self._tasks[device] = self._bars.add_task(device, total=total or None, state=shown)
            self._bars.update(self._tasks[device], completed=received, total=total or None, state=shown)
        elif self._last.get(device) != (state, reason):
            self._last[device] = (state, reason)
            self._console.print(f"{device}: {shown}", markup=False, highlight=False)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


def show_summary(s: Any) -> None:
    """`keywire summarize`: layers, totals, tensors and embedded parameters (a `ModelSummary`)."""
    c = out()
    c.print(f"Model: {s.path}", markup=False)
    c.print(f"Size: {s.size_bytes:,} bytes", markup=False)

    def shapes(xs: Sequence[Sequence[int]]) -> str:
        return ", ".join("x".join(map(str, x)) for x in xs if x)

    show(table("layers", ("#", "op", "input shapes", "output shape", "MACs"),
               [(x.index, x.op, shapes(x.inputs), shapes(x.outputs), f"{x.macs:,}") for x in s.layers],
               caption="MACs: multiply-accumulates of the op for one inference (convolutions, dense layers)",
               right=(0, 4)), c)
    for line in (f"Total MACs: {s.total_macs:,}", f"Weights: {s.total_weight_bytes:,} bytes",
                 f"Activations: {s.peak_activation_bytes:,} bytes at peak (live tensors; a TFLM arena needs this "
                 "plus its scratch buffers and bookkeeping)", s.step_line()):
        if line:
            c.print(line, markup=False)
    rows = [(kind, t["name"], t["dtype"], str(t["shape"]), f"{t['scale']:.6g}", t["zero_point"])
            for kind, ts in (("input", s.inputs), ("output", s.outputs)) for t in ts]
    show(table("tensors", ("", "name", "type", "shape", "scale", "zero point"), rows,
               caption="an int8 value v means scale x (v - zero point)", right=(4, 5)), c)
    params = [(k, v.hex() if isinstance(v, bytes) else v) for k, v in s.parameters.items()]
    show(table("parameters (SL_PARAMSv1)", ("key", "value"), params or [("(none)", "")],
               caption="fe.*: the audio frontend the model was trained with; detection_*: the detector's settings",
               right=()), c)
