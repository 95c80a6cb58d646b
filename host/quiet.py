"""Keep native libraries' log noise out of the CLI's output unless `--debug` is given.

TensorFlow's C++ logging (`TF_CPP_MIN_LOG_LEVEL`, read once when TensorFlow loads, so it is set
before any import) and its Python side (absl logging) print pages of INFO and WARNING lines;
TFLite prints "Created TensorFlow Lite XNNPACK delegate" from C++ straight to file
descriptor 2 when an interpreter is created, which only redirecting that descriptor hides.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator


def quiet_tensorflow(debug: bool = False) -> None:
    """Before TensorFlow is imported: only its errors, or everything with --debug."""
    if debug:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    # e.g. the converter's "Statistics for quantized inputs were expected" on every export
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow\.")


@contextmanager
def native_stderr_silenced(debug: bool = False) -> Iterator[None]:
    """Inside the block, file descriptor 2 goes to /dev/null (C/C++ log lines), while Python's
    `sys.stderr` (progress, warnings, errors, rich) writes to the real stderr through a
    duplicate of it. Nothing changes with --debug or without a real descriptor 2."""
    if debug:
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # no real descriptor (e.g. a test runner's capture)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding or "utf-8",
                           errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
