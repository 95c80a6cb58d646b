"""`keywire classify`: watch what a model hears, live (like `mltk classify_audio`).

The audio goes through the agent's own streaming pipeline (`KeywordSpotter`: frontend, model,
averaging, thresholds, suppression), so what the view shows is what a device would do. On a
terminal a rich `Live` view redraws each class's latest score against its threshold and the
last detections; with `--no-live` or without a terminal, one line per detection is printed
(`--json`: one JSON object per detection, as `keywire-agent run` prints them).
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Deque, Optional

import numpy as np
import typer

_BAR = 32


@dataclass
class ClassifyView:
    """What the view shows; updated after every inference and detection."""

    model: str
    source: str
    classes: tuple[str, ...]
    thresholds: tuple[int, ...]
    scores: np.ndarray
    time_ms: int = 0
    inferences: int = 0
    top: int = -1          # top class of the averaged scores (-1: window not full yet)
    top_score: int = 0
    detections: Deque[tuple[int, str, int]] = field(default_factory=lambda: deque(maxlen=8))
    total: int = 0

    def render(self):  # -> rich renderable
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = Table(title=f"{self.model} on {self.source}  {self.time_ms / 1000:7.1f} s  "
                        f"{self.inferences} inferences  {self.total} detections", title_justify="left")
        for c, j in (("class", "left"), ("score", "left"), ("", "right"), ("threshold", "right")):
            t.add_column(c, justify=j)  # type: ignore[arg-type]
        for i, k in enumerate(self.classes):
            s, th = int(self.scores[i]), self.thresholds[i]
            filled = round(s / 255 * _BAR)
            style = "bold green" if s > th else ("cyan" if i == self.top else "")
            bar = Text("█" * filled + "·" * (_BAR - filled), style=style)
            t.add_row(Text(k, style="bold" if i == self.top else ""), bar, str(s), str(th))
        recent = Text("\n".join(f"{ms / 1000:8.2f} s  {kw:<12} score {sc}" for ms, kw, sc in self.detections)
                      or "no detection yet", style="yellow")
        legend = Text("score: the model's latest output for each class (0-255); a detection needs the score "
                      "averaged over the window above the threshold (bold green: latest score above it)",
                      style="dim")
        return Group(t, Text("last detections:"), recent, legend)


def run_classify(model_spec: Path, source_spec: str, realtime: bool, threshold: Optional[int],
                 on_inference: Callable[[ClassifyView], None], on_detection: Callable[[ClassifyView, object], None],
                 duration_s: Optional[float] = None, debug: bool = False) -> ClassifyView:
    """Stream the source through the agent's spotter; calls back after each inference/detection."""
    from keywire.agent.sources import open_source
    from keywire.agent.spotter import KeywordSpotter
    from keywire.training.evaluate import load_any_model

    from .cmd_evaluate_stream import resolve_model
    from .quiet import native_stderr_silenced

    with native_stderr_silenced(debug):
        model = load_any_model(resolve_model(model_spec))
    det = model.detection
    if threshold is not None:  # one threshold for every class replaces a per-class list
        det = dataclasses.replace(det, detection_threshold=threshold, detection_threshold_list=None)
    rate = model.frontend.sample_rate_hz
    view = ClassifyView(model.name, source_spec, tuple(model.classes),
                        tuple(det.threshold_for(i) for i in range(len(model.classes))),
                        np.zeros(len(model.classes), np.uint8))

    def scored(now_ms: int, scores: np.ndarray) -> None:
        view.scores, view.time_ms = np.asarray(scores), now_ms
        view.inferences += 1
        view.top, view.top_score = spotter.stats.last_top, spotter.stats.last_score
        on_inference(view)

    spotter = KeywordSpotter(model, det, on_scores=scored)
    source = open_source(source_spec, rate, realtime=realtime)
    with native_stderr_silenced(debug):  # PortAudio/ALSA chatter when a microphone opens
        source.open()
    chunk = max(1, rate * det.latency_ms // 1000)
    try:
        while duration_s is None or spotter.time_ms < duration_s * 1000:
            x = source.read(chunk)
            if x is None:
                break
            for d in spotter.feed(x):
                view.total += 1
                view.detections.append((d.time_ms, d.keyword, d.score))
                on_detection(view, d)
    finally:
        source.close()
        spotter.close()
    return view


def classify(
    model: Annotated[Path, typer.Option("--model", "-m", help="A .tflite, a keywire model folder or a bundled model's name.")],
    source: Annotated[str, typer.Option(help="mic[:DEVICE] | file:PATH | stdin[@RATE] | silence")] = "mic",
    live: Annotated[bool, typer.Option("--live/--no-live", help="Redraw a live view (needs a terminal); "
                                       "--no-live prints one line per detection.")] = True,
    realtime: Annotated[bool, typer.Option("--realtime/--no-realtime", help="Play a file at real-time pace.")] = True,
    threshold: Annotated[Optional[int], typer.Option(min=0, max=255, help="Detection threshold 0-255 for every "
                                                     "class (default: the model's).")] = None,
    duration: Annotated[Optional[float], typer.Option(min=0.0, help="Stop after this many seconds of audio.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --no-live: one JSON object per detection.")] = False,
) -> None:
    """Show the model's per-class scores and detections live as audio plays (Ctrl-C stops)."""
    from rich.console import Console
    from rich.live import Live

    from .cli import debug_enabled

    console = Console()
    use_live = live and not as_json and console.is_terminal
    start = time.monotonic()

    def line(view: ClassifyView, d) -> None:  # noqa: ANN001 - agent Detection
        if as_json:
            typer.echo(json.dumps(d.to_dict(), separators=(",", ":")))
        else:
            typer.echo(f"{d.time_ms / 1000:8.2f} s  {d.keyword:<12} score {d.score:3d}")

    try:
        if use_live:
            with Live(console=console, refresh_per_second=10, transient=False) as lv:
                last = [0.0]

                def redraw(view: ClassifyView, *_: object) -> None:
                    now = time.monotonic()
                    if now - last[0] >= 0.05:
                        last[0] = now
                        lv.update(view.render())

                view = run_classify(model, source, realtime, threshold, redraw, redraw, duration, debug_enabled())
                lv.update(view.render())
        else:
            view = run_classify(model, source, realtime, threshold, lambda v: None, line, duration, debug_enabled())
    except KeyboardInterrupt:
        return
    typer.echo(f"{view.total} detections in {view.time_ms / 1000:.1f} s of audio ({view.inferences} inferences, "
               f"{time.monotonic() - start:.1f} s)", err=True)


def register(app: typer.Typer) -> None:
    app.command()(classify)
