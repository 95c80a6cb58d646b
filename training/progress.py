"""Progress bars for long host-side steps (feature extraction, training epochs, evaluation,
synthesis, download, push), drawn with rich on stderr.

A bar is drawn only on a terminal and erased when its step ends (the step's one-line result
stays); in a pipe, a log or a test nothing is drawn, so captured output holds only lines.
`bar()` yields an `update(done, total)` callback, the shape the engines' `progress` hooks take.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

Update = Callable[[int, int], None]


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def bar(description: str, enabled: bool = True, total: Optional[int] = None,
        unit: str = "items") -> Iterator[Update]:
    """A transient progress bar; `update(done, total)` moves it (no-op without a terminal).
    `unit="bytes"` shows sizes and speed; a total of None or 0 draws an open-ended bar."""
    console = _console() if enabled else None
    if console is None or not console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    counts = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    with Progress(TextColumn("{task.description}"), BarColumn(), *counts, TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True) as p:
        task = p.add_task(description, total=total)

        def update(done: int, n: Optional[int]) -> None:
            p.update(task, completed=done, total=n or None)

        yield update


def is_terminal() -> bool:
    """Whether stderr is a terminal (bars are drawn)."""
    return _console().is_terminal
