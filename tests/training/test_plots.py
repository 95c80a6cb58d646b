"""Evaluation plots: legends name every class (also `_unknown_`/`_silence_`) with its area,
the ROC's false-positive axis is logarithmic, the confusion matrix is normalised per true
class, a one-epoch history shows its points. Built from the bundled speech12 model scoring
real espeak-ng speech."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.training.bundled import model_path
from keywire.training.evaluate import EvalItem, evaluate_clips
from keywire.training.plots import (confusion_figure, display_label, history_figure, pr_figure, roc_figure,
                                    save_history, save_plots)

from tests.fixtures.speech import read_wav, synthesize

WORDS = {"yes": "yes", "no": "no", "up": "up", "stop": "stop", "house": "_unknown_", "marvin": "_unknown_"}
VOICES = ("en-us", "en-gb", "en-us+f3")


@pytest.fixture(scope="module")
def result():
    """speech12 scored on spoken words, other words and quiet noise (a real evaluation)."""
    model = KeywordModel.load(model_path("speech12"))
    items = []
    for word, label in WORDS.items():
        for voice in VOICES:
            x, _ = read_wav(synthesize(word, voice=voice))
            items.append(EvalItem(f"{word}/{voice}", label, lambda x=x: x))
    rng = np.random.default_rng(1)
    for i in range(6):
        noise = (rng.standard_normal(16000) * 30 * (i + 1)).astype(np.int16)
        items.append(EvalItem(f"_silence_/{i}", "_silence_", lambda x=noise: x))
    return evaluate_clips(model, items)


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_roc_legend_names_every_class_with_auc_and_log_fpr_axis(result) -> None:
    fig = roc_figure(result)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    labels = _legend(fig)
    auc = result.roc_auc()
    for k in ("yes", "no", "_unknown_", "_silence_"):
        assert f"{display_label(k)} (AUC {auc[k]:.3f})" in labels, labels
    assert not any(lbl.startswith("_") for lbl in labels)
    assert len(ax.get_lines()) == len(labels)  # no curve left out of the legend
    assert ax.get_xlim()[0] > 0  # zero false positives is drawn, not lost on the log axis


def test_pr_legend_carries_average_precision(result) -> None:
    labels = _legend(pr_figure(result))
    assert any(lbl.startswith("unknown (AP ") for lbl in labels) and any(lbl.startswith("silence (AP ") for lbl in labels)
    aps = [float(lbl.rsplit("AP ", 1)[1].rstrip(")")) for lbl in labels]
    assert all(0.0 <= a <= 1.0 for a in aps)


def test_confusion_matrix_is_normalised_per_true_class_with_counts(result) -> None:
    fig = confusion_figure(result)
    ax = fig.axes[0]
    share = ax.get_images()[0].get_array()
    m = result.confusion()
    m = m[m.sum(axis=1) > 0]
    np.testing.assert_allclose(share.sum(axis=1), 1.0)
    np.testing.assert_allclose(share, m / m.sum(axis=1, keepdims=True))
    texts = {t.get_text() for t in ax.texts}
    i, j = np.unravel_index(np.argmax(m), m.shape)
    assert f"{share[i, j] * 100:.0f}%\n{m[i, j]}" in texts
    w, h = fig.get_size_inches()
    assert w >= 8 and h >= 5
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert "unknown (6)" in ticks and "silence (6)" in ticks


def test_one_epoch_history_shows_markers(tmp_path: Path) -> None:
    hist = {"loss": [1.2], "val_loss": [1.3], "accuracy": [0.4], "val_accuracy": [0.35]}
    fig = history_figure(hist, "one epoch")
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 2 and all(line.get_marker() not in (None, "", "None") for line in lines)
        lo, hi = ax.get_xlim()
        assert lo < 1 < hi
    path = save_history(hist, tmp_path / "h.png", "one epoch")
    assert path.stat().st_size > 5000


def test_save_plots_writes_three_pngs(result, tmp_path: Path) -> None:
    paths = save_plots(result, tmp_path / "p", prefix="test_")
    assert [p.name for p in paths] == ["test_confusion_matrix.png", "test_roc.png", "test_precision_recall.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
