"""Helpers for training tests: run the `keywire` CLI in a subprocess (TensorFlow stays out
of the test process, where the agent's TFLite runtime lives)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tests.fixtures.paths import REPO


def run_keywire(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def keywire_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_keywire


def run_python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def copy_words(src: Path, dst: Path, words: dict[str, str]) -> Path:
    """Copy word folders of a Speech Commands-layout dataset (`{src_word: dst_word}`)."""
    import shutil

    for a, b in words.items():
        shutil.copytree(src / a, dst / b, dirs_exist_ok=True)
    return dst
