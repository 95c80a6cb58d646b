"""Model summary like `mltk summarize`: ops, tensors, MACs, size, activation memory and
embedded parameters: what decides whether a model fits a microcontroller.

Reads the TFLite flatbuffer with the schema shipped by ai-edge-litert (or TensorFlow);
no interpreter is needed except to confirm the model loads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keywire.protocol import tflite_file
from keywire.protocol.errors import ModelError
from keywire.agent.streaming_head import step_model_bytes
from keywire.protocol.sl_params import read_params

_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8"}
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1}


@dataclass
class LayerSummary:
    index: int
    op: str
    inputs: list[list[int]]
    outputs: list[list[int]]
    macs: int


@dataclass
class ModelSummary:
    path: str
    size_bytes: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    layers: list[LayerSummary]
    total_macs: int
    total_weight_bytes: int
    peak_activation_bytes: int = 0  # most bytes of activations alive during one op
    parameters: dict[str, Any] = field(default_factory=dict)
    step_model: dict[str, Any] | None = None  # a speech-embedding head's step form: bytes, MACs per step

    def step_line(self) -> str:
        """One line on the step model, or ""."""
        if not self.step_model:
            return ""
        return (f"Step model (KW_STEPv1): {self.step_model['bytes']:,} bytes, {self.step_model['macs']:,} MACs "
                "per new embedding (the agent runs it instead of the whole window)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["parameters"] = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in self.parameters.items()}
        return d

    def to_text(self) -> str:
        lines = [f"Model: {self.path}", f"Size: {self.size_bytes:,} bytes", ""]
        lines.append(f"{'#':>3}  {'op':<22} {'input shapes':<34} {'output shape':<20} {'MACs':>10}")
        for layer in self.layers:
            ins = ", ".join("x".join(map(str, s)) for s in layer.inputs if s)
            outs = ", ".join("x".join(map(str, s)) for s in layer.outputs)
            lines.append(f"{layer.index:>3}  {layer.op:<22} {ins[:34]:<34} {outs[:20]:<20} {layer.macs:>10,}")
        lines += ["", f"Total MACs: {self.total_macs:,}", f"Weights: {self.total_weight_bytes:,} bytes",
                  f"Activations: {self.peak_activation_bytes:,} bytes at peak (live tensors; a TFLM arena "
                  f"needs this plus its scratch buffers and bookkeeping)"]
        if self.step_model:
            lines.append(self.step_line())
        for t in self.inputs:
            lines.append(f"Input:  {t['name']} {t['dtype']} {t['shape']} scale={t['scale']:.6g} zero_point={t['zero_point']}")
        for t in self.outputs:
            lines.append(f"Output: {t['name']} {t['dtype']} {t['shape']} scale={t['scale']:.6g} zero_point={t['zero_point']}")
        lines += ["", "Parameters (SL_PARAMSv1):"]
        if not self.parameters:
            lines.append("  (none)")
        for k, v in self.parameters.items():
            lines.append(f"  {k:<40} {v}")
        return "\n".join(lines)


def summarize(path: Path) -> ModelSummary:
    data = Path(path).read_bytes() if Path(path).is_file() else None
    if data is None:
        raise ModelError(f"model file not found: {path}")
    if len(data) < 8 or data[4:8] != tflite_file.IDENTIFIER:
        raise ModelError(f"{path} is not a TFLite model")
    try:
        return _summarize(path, data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:  # flatbuffer access on corrupt data raises anything (struct, index, numpy)
        raise ModelError(f"{path}: corrupt TFLite flatbuffer ({type(exc).__name__}: {str(exc)[:80]})") from None


def _summarize(path: Path, data: bytes) -> ModelSummary:
    schema = tflite_file.schema()
    m = schema.Model.GetRootAs(data, 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    if not m.SubgraphsLength():
        raise ModelError("the model has no subgraph")
    g = m.Subgraphs(0)

    def shape(i: int) -> list[int]:
        return [] if i < 0 else [int(v) for v in g.Tensors(i).ShapeAsNumpy()] if g.Tensors(i).ShapeLength() else []

    def tensor(i: int) -> dict[str, Any]:
        t = g.Tensors(i)
        q = t.Quantization()
        scale = float(q.ScaleAsNumpy()[0]) if q is not None and q.ScaleLength() else 0.0
        zp = int(q.ZeroPointAsNumpy()[0]) if q is not None and q.ZeroPointLength() else 0
        return {"name": t.Name().decode(), "shape": shape(i), "dtype": _TYPES.get(t.Type(), str(t.Type())),
                "scale": scale, "zero_point": zp}

    layers: list[LayerSummary] = []
    op_tensors: list[tuple[list[int], list[int]]] = []
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = m.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"op{builtin}")
        if name == "CUSTOM":
            name = code.CustomCode().decode()
        ins = [shape(int(i)) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [shape(int(i)) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        layers.append(LayerSummary(k, name, ins, outs, _macs(name, ins, outs)))
        op_tensors.append(([int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else [],
                           [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []))
    metadata = {m.Metadata(i).Buffer() for i in range(m.MetadataLength())}   # parameters, step model
    weight_bytes = sum(m.Buffers(i).DataLength() for i in range(m.BuffersLength()) if i not in metadata)
    params = read_params(data)
    step = step_model_bytes(data)
    step_model = None
    if step is not None:
        inner = _summarize(Path(f"{path}#KW_STEPv1"), step)
        step_model = {"bytes": len(step), "macs": inner.total_macs, "weight_bytes": inner.total_weight_bytes}
    return ModelSummary(
        path=str(path), size_bytes=len(data),
        inputs=[tensor(int(i)) for i in g.InputsAsNumpy()],
        outputs=[tensor(int(i)) for i in g.OutputsAsNumpy()],
        layers=layers, total_macs=sum(x.macs for x in layers), total_weight_bytes=weight_bytes,
        peak_activation_bytes=_peak_activations(m, g, op_tensors), parameters=params, step_model=step_model)


def _peak_activations(m: Any, g: Any, op_tensors: list[tuple[list[int], list[int]]]) -> int:
    """Peak bytes of non-constant tensors alive at once, running ops in their stored order: a
    tensor lives from the op that writes it (graph inputs: from the start) to the last op that
    reads it (graph outputs: to the end). This is what a memory planner packs at best."""
    def is_activation(i: int) -> bool:
        t = g.Tensors(i)
        return m.Buffers(t.Buffer()).DataLength() == 0

    def nbytes(i: int) -> int:
        t = g.Tensors(i)
        n = int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
        return n * _TYPE_BYTES.get(t.Type(), 4)

    n_ops = len(op_tensors)
    first: dict[int, int] = {int(i): 0 for i in g.InputsAsNumpy()}
    last: dict[int, int] = {int(i): n_ops - 1 for i in g.OutputsAsNumpy()}
    for k, (ins, outs) in enumerate(op_tensors):
        for i in outs:
            first.setdefault(i, k)
        for i in ins:
            if i >= 0:
                last[i] = max(last.get(i, k), k)
    live = [i for i in first if is_activation(i)]
    return max((sum(nbytes(i) for i in live if first[i] <= k <= last.get(i, first[i]))
                for k in range(n_ops)), default=0)


def _macs(op: str, ins: list[list[int]], outs: list[list[int]]) -> int:
    if not outs or not outs[0]:
        return 0
    out = outs[0]
    if op == "CONV_2D" and len(ins) > 1 and len(ins[1]) == 4:
        _, kh, kw, cin = ins[1]
        return int(np.prod(out)) * kh * kw * cin
    if op == "DEPTHWISE_CONV_2D" and len(ins) > 1 and len(ins[1]) == 4:
        _, kh, kw, _ = ins[1]
        return int(np.prod(out)) * kh * kw
    if op == "FULLY_CONNECTED" and len(ins) > 1 and len(ins[1]) == 2:
        return int(np.prod(out[:-1] or [1])) * ins[1][0] * ins[1][1]
    return 0
