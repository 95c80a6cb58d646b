"""The one place that chooses a TFLite interpreter.

Order: `ai_edge_litert` (tflite-runtime's successor, fast int8 kernels with XNNPACK),
`tflite_runtime` (32-bit Raspberry Pi OS; needs numpy<2 and must be imported before
TensorFlow in a process), then `tensorflow.lite` (host machines with TensorFlow only).
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Callable, Optional, Sequence

from keywire.protocol.errors import ModelError

_CANDIDATES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


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


def load_interpreter(model: bytes, num_threads: int = 1,
                     input_shape: Optional[Sequence[int]] = None) -> Any:
    """An allocated interpreter for the model bytes; `ModelError` if the runtime rejects it.
    `input_shape` resizes the first input before allocation (models with a dynamic input,
    whose stored shape is only a placeholder)."""
    _, cls = _interpreter_class()
    try:
        interp = cls(model_content=bytes(model), num_threads=num_threads)
        if input_shape is not None:
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(input_shape))
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"the TFLite runtime cannot load this model: {str(exc).splitlines()[0]}") from exc
    return interp
