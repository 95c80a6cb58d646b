"""Training-history plot (loss and accuracy per epoch) for the model directory."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def save_history(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """Two panels: loss and accuracy, training and validation curves (`plots.history_figure`)."""
    from .plots import save_history as save

    return save(history, path, title)
