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


@contextmanager
def native_stderr_silenced(debug: bool = False) -> Iterator[None]:
    """Descriptor 2 goes to /dev/null inside the block (C/C++ log lines); Python's own
    `sys.stderr` is flushed first and works again afterwards. Exceptions still propagate."""
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
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
