"""The embedding model run as a stream: cut at its time pools, each cut keeping its context.

The pinned embedding model is valid convolutions along time (kernel height 1 or 3, stride
1) and three max-pools of 2 along time, one embedding per 8 mel frames. A stream that calls
it on whole 76-frame windows recomputes the 68 frames they share with the window before.
Here the model is cut after each time pool into segments, each an ordinary TFLite model
built from the pinned file's own operators and weights (nothing is retrained or copied into
the repository). A segment keeps the last frames of its input that its convolutions need
again (its context) and runs only on the frames that are new: per embedding, 8 mel frames
in the first segment, 4, 2 and 1 in the next ones. The pools pair the same frames as the
whole model does, because every call adds a whole number of 8-frame steps; the embeddings
are bit-identical to whole-window calls (tests/agent/test_embedding.py).

Building the segments needs the TFLite schema's Python module (object API), which
ai-edge-litert and tensorflow ship; with tflite-runtime alone `build_segments` returns None
and the stream calls the whole model on its runs instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from keywire.protocol.errors import ModelError

from ..interpreter import load_interpreter, runtime_name

log = logging.getLogger("keywire.frontend")


@dataclass
class _Segment:
    """One cut of the model: its interpreter and the input frames it needs again (context)."""

    interpreter: Any
    input_index: int
    output_index: int
    context: int
    shape: tuple = ()

    def run(self, x: np.ndarray) -> np.ndarray:
        """[1, context + n, F, C] -> [1, n / 2, F', C'] after a pool, [1, n, 1, 96] at the end."""
        if x.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input_index, list(x.shape))
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)


def _op_name(schema: Any, model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next(k for k, v in vars(schema.BuiltinOperator).items() if v == number)


def _cuts(schema: Any, model: Any) -> list[tuple[int, int, int]]:
    """(first op, end op, context frames) of each segment; `ModelError` if the
    model is not the streamable shape described above."""
    graph = model.subgraphs[0]
    cuts, start, context = [], 0, 0
    for i, op in enumerate(graph.operators):
        name, opt = _op_name(schema, model, op), op.builtinOptions
        if name == "CONV_2D":
            height = int(graph.tensors[op.inputs[1]].shape[1])      # filter [O, H, W, I]
            if opt.strideH != 1 or opt.dilationHFactor != 1 or (height > 1 and opt.padding != schema.Padding.VALID):
                raise ModelError(f"embedding model operator {i} is not a valid stride-1 convolution in time")
            context += height - 1
        elif name == "MAX_POOL_2D" and opt.strideH != 1:
            if opt.strideH != 2 or opt.filterHeight != 2:
                raise ModelError(f"embedding model operator {i} pools time other than by 2")
            cuts.append((start, i + 1, context))
            start, context = i + 1, 0
        elif name == "MAX_POOL_2D" and opt.filterHeight != 1:
            raise ModelError(f"embedding model operator {i} pools time without a stride")
        elif name not in ("PAD", "LEAKY_RELU", "MAXIMUM", "MAX_POOL_2D"):
            raise ModelError(f"embedding model operator {i} ({name}) is not one a stream can cut")
    cuts.append((start, len(graph.operators), context))
    return cuts


def _segment_bytes(schema: Any, model_bytes: bytes, first: int, end: int) -> bytes:
    """A model of operators [first, end) of the model's graph, without the weights of the
    others (their buffers are emptied, so each interpreter holds only its own)."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[first:end]
    graph.inputs = [graph.operators[0].inputs[0]]
    graph.outputs = [graph.operators[-1].outputs[0]]
    used = {t for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    keep = {graph.tensors[t].buffer for t in used}
    for t, tensor in enumerate(graph.tensors):
        if t not in used and tensor.buffer not in keep and tensor.buffer > 0:
            model.buffers[tensor.buffer].data = None
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class EmbeddingSegments:
    """The embedding model as segments with context. `run(mel)` takes the mel frames of k
    new embeddings: at first (not primed) their whole run of 76 + 8(k-1) frames, after that
    only the 8k new frames; it returns the k embeddings."""

    def __init__(self, segments: list[_Segment]) -> None:
        self._segments = segments
        self._held: list[Optional[np.ndarray]] = [None] * len(segments)

    @property
    def primed(self) -> bool:
        return self._held[0] is not None

    def reset(self) -> None:
        """Forget every segment's context (a fresh stream)."""
        self._held = [None] * len(self._segments)

    def run(self, mel: np.ndarray) -> np.ndarray:
        """Mel frames [n, 32] float32 (as the class says) -> embeddings [k, 96] float32."""
        y = mel[None, :, :, None]
        for i, seg in enumerate(self._segments):
            held = self._held[i]
            x = np.concatenate([held, y], axis=1) if held is not None else np.ascontiguousarray(y)
            self._held[i] = x[:, x.shape[1] - seg.context:].copy()
            y = seg.run(x)
        return y.reshape(-1, y.shape[-1])


def build_segments(model_bytes: bytes) -> Optional[EmbeddingSegments]:
    """The segments of the embedding model, or None where no schema module is installed
    (tflite-runtime alone: importing tensorflow's would break it)."""
    if runtime_name() == "tflite_runtime":
        return None
    from keywire.protocol.tflite_file import schema as tflite_schema
    try:
        schema = tflite_schema()
    except ModelError as exc:
        log.info("embedding model runs on whole windows: %s", exc)
        return None
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    segments = []
    for first, end, context in _cuts(schema, model):
        interp = load_interpreter(_segment_bytes(schema, model_bytes, first, end))
        segments.append(_Segment(interp, interp.get_input_details()[0]["index"],
                                 interp.get_output_details()[0]["index"], context))
    return EmbeddingSegments(segments)
