"""The one place that chooses a TFLite interpreter.

Order: `ai_edge_litert` (tflite-runtime's successor, fast int8 kernels with XNNPACK),
`tflite_runtime` (32-bit Raspberry Pi OS; needs numpy<2 and must be imported before
TensorFlow in a process), then `tensorflow.lite` (host machines with TensorFlow only).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from functools import lru_cache
from typing import Any, Callable, Iterator, Optional, Sequence

from keywire.protocol.errors import ModelError

_CANDIDATES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_STDERR_LOCK = threading.Lock()
log = logging.getLogger("keywire.agent.interpreter")


@lru_cache(maxsize=1)
def _interpreter_class() -> tuple[str, Callable[..., Any]]:
    forced = os.environ.get("KEYWIRE_TFLITE_RUNTIME")  # for benchmarks comparing runtimes
    for name in ([forced] if forced else _CANDIDATES):
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert.interpreter import Interpreter  # type: ignore
            elif name == "tflite_runtime":
                from tflite_runtime.interpreter import Interpreter  # type: ignore
            elif name == "tensorflow":
                import tensorflow as tf  # type: ignore

                Interpreter = tf.lite.Interpreter
            else:
                continue
            return name, Interpreter
        except ImportError:
            continue
    raise ModelError("no TFLite interpreter installed (install ai-edge-litert or tflite-runtime)")


def runtime_name() -> str:
    """Name of the interpreter package in use."""
    return _interpreter_class()[0]


def _builtin_only_kwargs(name: str) -> dict[str, Any]:
    """Interpreter arguments that leave out the default delegate (XNNPACK): the runtime's own
    builtin kernels only."""
    if name == "ai_edge_litert":
        from ai_edge_litert.interpreter import OpResolverType  # type: ignore
    elif name == "tflite_runtime":
        from tflite_runtime.interpreter import OpResolverType  # type: ignore
    else:
        import tensorflow as tf  # type: ignore

        OpResolverType = tf.lite.experimental.OpResolverType
    return {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def load_interpreter(model: bytes, num_threads: int = 1,
                     input_shape: Optional[Sequence[int]] = None, default_delegates: bool = True) -> Any:
    """An allocated interpreter for the model bytes; `ModelError` if the runtime rejects it.
    `input_shape` resizes the first input before allocation (models with a dynamic input,
    whose stored shape is only a placeholder). `default_delegates=False` runs the builtin
    kernels without XNNPACK (for the rare model XNNPACK cannot prepare)."""
    name, cls = _interpreter_class()
    try:
        with _runtime_info_hidden():
            extra = {} if default_delegates else _builtin_only_kwargs(name)
            interp = cls(model_content=bytes(model), num_threads=num_threads, **extra)
            if input_shape is not None:
                interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(input_shape))
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError("the TFLite runtime cannot load this model: " + error_line(
            exc, f"{type(exc).__name__} with no message (a declared tensor may be too large to allocate)")) from exc
    return interp


def error_line(exc: BaseException, empty: str = "") -> str:
    """The first non-empty line of an error the runtime raised, at most 160 characters, for a
    one-line message; `empty` (default: the error's type) when it says nothing, as when
    allocating a huge declared tensor fails."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:160] if lines else (empty or type(exc).__name__)


@contextlib.contextmanager
def _runtime_info_hidden() -> Iterator[None]:
    """Drop the TFLite C++ logger's `INFO:` lines (e.g. "Created TensorFlow Lite XNNPACK
    delegate for CPU.") that it writes straight to fd 2 while building an interpreter; no
    environment variable silences ai-edge-litert's logger. Everything else written to fd 2
    meanwhile (warnings, errors, other threads' output) is written back afterwards. Nothing is
    hidden when debug logging is on."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            captured = tempfile.TemporaryFile()
        except (OSError, ValueError, AttributeError):  # no stderr or no temporary space: hide nothing
            yield
            return
        with captured:
            saved = os.dup(2)
            try:
                os.dup2(captured.fileno(), 2)
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError, AttributeError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = b"".join(line for line in captured.read().splitlines(keepends=True)
                                if not line.startswith(b"INFO: "))
                if kept:
                    os.write(2, kept)
