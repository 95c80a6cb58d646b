"""Reading a .tflite file's FlatBuffer without an interpreter.

The device needs only the `flatbuffers` runtime to find a model's metadata (SL_PARAMSv1) and
its input shape, so these readers walk the tables by field index. Writing a model and the
full summary use the TFLite schema's generated module (`schema()`), which ships with
ai-edge-litert or TensorFlow (host side).
"""
from __future__ import annotations

import struct
from typing import Any, Optional

from flatbuffers import number_types as N
from flatbuffers.table import Table

from .errors import ModelError

IDENTIFIER = b"TFL3"
MAX_RANK = 8          # a keyword model's input is [1, frames, channels(, 1)]
MAX_DIMENSION = 1 << 20

# Field indices of the TFLite schema tables used here.
_MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 2, 4, 6
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS = 0, 1
_TENSOR_SHAPE = 0


def field_pos(t: Table, index: int) -> int:
    """vtable offset of field `index` (0 when absent)."""
    return t.Offset(4 + 2 * index)


def vector(t: Table, index: int) -> tuple[int, int]:
    """(start position, length) of a vector field, (0, 0) when absent."""
    o = field_pos(t, index)
    if not o:
        return 0, 0
    return t.Vector(o), t.VectorLen(o)


def indirect_table(t: Table, index: int) -> Optional[Table]:
    """The sub-table in field `index`, or None when absent."""
    o = field_pos(t, index)
    if not o:
        return None
    return Table(t.Bytes, t.Indirect(o + t.Pos))


def string_at(buf: bytes, pos: int) -> str:
    (n,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4:pos + 4 + n]).decode("utf-8")


def _root(model: bytes) -> tuple[bytes, Table]:
    buf = bytes(model)
    if len(buf) < 8 or buf[4:8] != IDENTIFIER:
        raise ModelError("not a TFLite model (missing TFL3 identifier)")
    (root,) = struct.unpack_from("<I", buf, 0)
    if root >= len(buf):
        raise ModelError("corrupt TFLite flatbuffer: root offset outside the file")
    return buf, Table(buf, root)


def find_metadata(model: bytes, name: str) -> Optional[bytes]:
    """Bytes of the metadata entry `name` of a TFLite flatbuffer, or None."""
    buf, m = _root(model)
    try:
        b_start, n_buffers = vector(m, _MODEL_BUFFERS)
        md_start, n_md = vector(m, _MODEL_METADATA)
        for i in range(n_md):
            md = Table(buf, m.Indirect(md_start + 4 * i))
            no = field_pos(md, 0)
            if not no or md.String(no + md.Pos).decode("utf-8", "replace") != name:
                continue
            bo = field_pos(md, 1)
            index = md.Get(N.Uint32Flags, bo + md.Pos) if bo else 0
            if index >= n_buffers:
                raise ModelError(f"metadata {name} points to missing buffer {index}")
            b = Table(buf, m.Indirect(b_start + 4 * index))
            d_start, d_len = vector(b, 0)
            if d_len:
                return buf[d_start:d_start + d_len]
            # Large models keep buffer data after the flatbuffer (offset/size fields 1, 2).
            oo, so = field_pos(b, 1), field_pos(b, 2)
            if oo and so:
                off = b.Get(N.Uint64Flags, oo + b.Pos)
                size = b.Get(N.Uint64Flags, so + b.Pos)
                if off + size > len(buf):
                    raise ModelError(f"metadata {name} lies outside the file")
                return buf[off:off + size]
            return b""
        return None
    except (struct.error, IndexError, TypeError, ValueError, OverflowError) as exc:
        # flatbuffers raises TypeError for offsets that wrap (a corrupt table), not struct.error
        raise ModelError(f"corrupt TFLite flatbuffer: {str(exc)[:80]}") from None


def input_shape(model: bytes) -> list[int]:
    """Shape of the first input tensor of the first subgraph, read from the FlatBuffer."""
    buf, m = _root(model)
    try:
        sg_start, n_sg = vector(m, _MODEL_SUBGRAPHS)
        if not n_sg:
            raise ModelError("the model has no subgraph")
        g = Table(buf, m.Indirect(sg_start))
        in_start, n_in = vector(g, _SUBGRAPH_INPUTS)
        t_start, n_tensors = vector(g, _SUBGRAPH_TENSORS)
        if not n_in:
            raise ModelError("the model has no input tensor")
        index = struct.unpack_from("<i", buf, in_start)[0]
        if not 0 <= index < n_tensors:
            raise ModelError(f"the model's input names missing tensor {index}")
        t = Table(buf, g.Indirect(t_start + 4 * index))
        s_start, rank = vector(t, _TENSOR_SHAPE)
        if rank > MAX_RANK:
            raise ModelError(f"the model's input has rank {rank} (at most {MAX_RANK})")
        shape = list(struct.unpack_from(f"<{rank}i", buf, s_start)) if rank else []
    except (struct.error, IndexError, TypeError, ValueError, OverflowError) as exc:
        # flatbuffers raises TypeError for offsets that wrap (a corrupt table), not struct.error
        raise ModelError(f"corrupt TFLite flatbuffer: {str(exc)[:80]}") from None
    if any(not 0 < d <= MAX_DIMENSION for d in shape if d != -1):
        raise ModelError(f"the model's input shape {shape} has a dimension out of range")
    return shape


def schema() -> Any:
    """The TFLite schema's generated Python module (object API), from whichever runtime has it."""
    try:
        from ai_edge_litert import schema_py_generated as generated  # type: ignore
    except ImportError:  # pragma: no cover - depends on installed runtime
        try:
            from tensorflow.lite.python import schema_py_generated as generated  # type: ignore
        except ImportError as exc:
            raise ModelError("reading the full model schema needs ai-edge-litert or tensorflow") from exc
    return generated
