"""The two feature models cut so that a stream computes only what is new.

The embedding model is valid convolutions along time (kernel height 1 or 3, stride 1) and
three max-pools of 2 along time, one embedding per 8 mel frames. A stream that calls it on
whole 76-frame windows recomputes the 68 frames they share with the window before. Here the
model is cut after each time pool into segments, each an ordinary TFLite model built from
the pinned file's own operators and weights (nothing is retrained or copied into the
repository). A segment keeps the last frames of its input that its convolutions need again
(its context) and runs only on the frames that are new: per embedding, 8 mel frames in the
first segment, 4, 2 and 1 in the next ones. The pools pair the same frames as the whole
model does, because every call adds a whole number of 8-frame steps.

The mel model computes each frame on its own, then clamps every value of a call to at least
(the call's maximum - 80). The stream calls it on a fixed grid of 1280-sample blocks so the
clamp sees 8 frames at a time. `MelCut` runs the model without its last three operators
(maximum, subtract, clamp) on several blocks in one call and applies the clamp to each block
of 8 frames with numpy: the same float32 operations, so the same values as one call per
block, at less cost per block.

Both give values bit-identical to the whole models (tests/agent/test_embedding.py).
Cutting needs the TFLite schema's Python module (object API), which ai-edge-litert and
tensorflow ship; with tflite-runtime alone the builders return None and the stream calls the
whole models instead.
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


def _sub_model(schema: Any, model_bytes: bytes, first: int, end: int,
               outputs: Optional[list[int]] = None) -> bytes:
    """A model of operators [first, end) of the model's graph (outputs: the last operator's
    output unless given), without the weights of the others (their buffers are emptied, so
    each interpreter holds only its own)."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[first:end]
    graph.inputs = [graph.operators[0].inputs[0]]
    graph.outputs = outputs if outputs is not None else [graph.operators[-1].outputs[0]]
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


class MelCut:
    """The mel model without its per-call clamp, on any whole number of blocks per call.
    `__call__(samples)`: a block's context + n blocks of int16 samples -> [n x
    frames_per_block, bins] float32 mel frames, each block's frames clamped to at least their
    own maximum - `floor`, as a one-block call of the whole model clamps."""

    def __init__(self, interpreter: Any, floor: np.float32, frames_per_block: int) -> None:
        self._interp = interpreter
        self._in = interpreter.get_input_details()[0]["index"]
        outputs = interpreter.get_output_details()
        self._peak, self._value = (d["index"] for d in outputs)
        self._bins = int(outputs[1]["shape"][-1])
        self._block_values = frames_per_block * self._bins
        self._floor = floor
        self._input = np.zeros((1, 0), dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if samples.shape[0] != self._input.shape[1]:
            self._input = np.zeros((1, samples.shape[0]), dtype=np.float32)
            self._interp.resize_tensor_input(self._in, list(self._input.shape))
            self._interp.allocate_tensors()
        self._input[0] = samples
        self._interp.set_tensor(self._in, self._input)
        self._interp.invoke()
        peak = self._interp.get_tensor(self._peak).reshape(-1, self._block_values)
        value = self._interp.get_tensor(self._value).reshape(-1, self._block_values)
        np.maximum(value, (peak.max(axis=1) - self._floor)[:, None], out=value)
        return value.reshape(-1, self._bins)


def _schema() -> Optional[Any]:
    """The schema module, or None with tflite-runtime (importing tensorflow's would break it)."""
    if runtime_name() == "tflite_runtime":
        return None
    from keywire.protocol.tflite_file import schema as tflite_schema
    try:
        return tflite_schema()
    except ModelError as exc:
        log.info("feature models run whole: %s", exc)
        return None


def build_segments(model_bytes: bytes) -> Optional[EmbeddingSegments]:
    """The segments of the embedding model, or None where no schema module is installed."""
    schema = _schema()
    if schema is None:
        return None
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    segments = []
    for first, end, context in _cuts(schema, model):
        interp = load_interpreter(_sub_model(schema, model_bytes, first, end))
        segments.append(_Segment(interp, interp.get_input_details()[0]["index"],
                                 interp.get_output_details()[0]["index"], context))
    return EmbeddingSegments(segments)


def build_mel_cut(model_bytes: bytes, block_samples: int, frames_per_block: int) -> Optional[MelCut]:
    """The mel model cut before its clamp, for blocks of `block_samples` (with their context)
    giving `frames_per_block` frames each; None where no schema module is installed;
    `ModelError` if its last operators are not the clamp described above."""
    schema = _schema()
    if schema is None:
        return None
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    ops = graph.operators
    names = [_op_name(schema, model, op) for op in ops[-3:]]
    peak_op, sub_op, clamp_op = ops[-3:]
    floor_tensor = graph.tensors[sub_op.inputs[1]]
    floor = model.buffers[floor_tensor.buffer].data
    if (names != ["REDUCE_MAX", "SUB", "MAXIMUM"] or sub_op.inputs[0] != peak_op.outputs[0]
            or clamp_op.inputs[1] != sub_op.outputs[0] or clamp_op.outputs[0] != graph.outputs[0]
            or floor is None or len(floor) != 4):
        raise ModelError("the mel model does not end in the per-call clamp a stream can cut")
    outputs = [peak_op.inputs[0], clamp_op.inputs[0]]
    interp = load_interpreter(_sub_model(schema, model_bytes, 0, len(ops) - 3, outputs),
                              input_shape=[1, block_samples])
    return MelCut(interp, np.frombuffer(bytes(bytearray(floor)), dtype=np.float32)[0], frames_per_block)
