"""Progress bars are drawn with rich on a terminal (a real pty) and left out of pipes."""
from __future__ import annotations

import subprocess
import sys

from tests.fixtures.paths import REPO
from tests.training.test_classify_profile import _run_on_pty

ARGS = ["dataset", "synth", "--words", "yes", "--per-word", "6", "--per-negative", "0", "--near-misses", "0",
        "--common-negatives", "0", "--voices", "espeak-ng"]


def test_synth_bar_on_a_terminal_only(tmp_path) -> None:
    rc, screen = _run_on_pty(ARGS + ["--out", str(tmp_path / "tty")])
    assert rc == 0, screen[-2000:]
    assert "synthesizing" in screen and "━" in screen and "6/6" in screen  # rich bar with counts
    r = subprocess.run([sys.executable, "-m", "keywire.host.cli", *ARGS, "--out", str(tmp_path / "pipe")],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "━" not in r.stderr and "synthesizing" not in r.stderr
    assert len(list((tmp_path / "pipe" / "yes").glob("*.wav"))) == 6
