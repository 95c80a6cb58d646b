"""Model parameters embedded in a .tflite, in MLTK's `SL_PARAMSv1` format (the codec).

The parameters are a small standalone FlatBuffer (`Dictionary { schema_version: uint8;
entries: [Entry] }`, `Entry { key: string; value: union }`) stored in the model's
`metadata` list under the name `SL_PARAMSv1`. Reading needs only the `flatbuffers` runtime,
so the device can do it; writing rebuilds the model with the TFLite schema's object API
(from ai_edge_litert or tensorflow), which only host commands need.
"""
from __future__ import annotations

import struct
from typing import Any, Iterable, Mapping

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

from . import tflite_file
from .errors import ParamsError
from .tflite_file import field_pos, indirect_table, string_at, vector

METADATA_NAME = "SL_PARAMSv1"
SCHEMA_VERSION = 1

# Union tags of Entry.value
BOOL, INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64 = range(1, 10)
FLOAT32, FLOAT64, STRING, STRING_LIST, INT32_LIST, FLOAT_LIST, BYTES = range(10, 17)

_SCALARS = {
    BOOL: (N.BoolFlags, "<?", 1), INT8: (N.Int8Flags, "<b", 1), UINT8: (N.Uint8Flags, "<B", 1),
    INT16: (N.Int16Flags, "<h", 2), UINT16: (N.Uint16Flags, "<H", 2),
    INT32: (N.Int32Flags, "<i", 4), UINT32: (N.Uint32Flags, "<I", 4),
    INT64: (N.Int64Flags, "<q", 8), UINT64: (N.Uint64Flags, "<Q", 8),
    FLOAT32: (N.Float32Flags, "<f", 4), FLOAT64: (N.Float64Flags, "<d", 8),
}
_FLT_MIN, _FLT_MAX = 1.175494351e-38, 3.402823466e38


# ---------------------------------------------------------------- reading
def decode_params(data: bytes) -> dict[str, Any]:
    """Decode SL_PARAMSv1 bytes into an ordered dict (insertion order kept)."""
    buf = bytes(data)
    try:
        (root,) = struct.unpack_from("<I", buf, 0)
        d = Table(buf, root)
        out: dict[str, Any] = {}
        start, n = vector(d, 1)
        for i in range(n):
            entry = Table(buf, d.Indirect(start + 4 * i))
            ko = field_pos(entry, 0)
            if not ko:
                continue
            key = entry.String(ko + entry.Pos).decode("utf-8")
            to = field_pos(entry, 1)
            tag = entry.Get(N.Uint8Flags, to + entry.Pos) if to else 0
            value_table = indirect_table(entry, 2)
            out[key] = _decode_value(buf, tag, value_table)
        return out
    except (struct.error, IndexError, UnicodeDecodeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        # flatbuffers raises TypeError for wrapped offsets; a huge declared count, MemoryError
        raise ParamsError(f"corrupt {METADATA_NAME} parameters: {type(exc).__name__}: {str(exc)[:80]}") from None


def _decode_value(buf: bytes, tag: int, t: Table | None) -> Any:
    if t is None:
        return None
    if tag in _SCALARS:
        flags, _, _ = _SCALARS[tag]
        o = field_pos(t, 0)
        value = t.Get(flags, o + t.Pos) if o else 0
        return bool(value) if tag == BOOL else value
    if tag == STRING:
        o = field_pos(t, 0)
        return t.String(o + t.Pos).decode("utf-8") if o else ""
    start, n = vector(t, 0)
    if tag == STRING_LIST:
        return [string_at(buf, start + 4 * i + struct.unpack_from("<I", buf, start + 4 * i)[0])
                for i in range(n)]
    if tag == INT32_LIST:
        return list(struct.unpack_from(f"<{n}i", buf, start)) if n else []
    if tag == FLOAT_LIST:
        return list(struct.unpack_from(f"<{n}f", buf, start)) if n else []
    if tag == BYTES:
        return bytes(buf[start:start + n])
    raise ParamsError(f"unknown {METADATA_NAME} value type {tag}")


def find_metadata(model: bytes, name: str = METADATA_NAME) -> bytes | None:
    """Bytes of the metadata entry `name` of a TFLite flatbuffer, or None."""
    return tflite_file.find_metadata(model, name)


def read_params(model: bytes) -> dict[str, Any]:
    """The SL_PARAMSv1 parameters of a .tflite (empty dict when it has none)."""
    raw = find_metadata(model)
    return decode_params(raw) if raw else {}


# ---------------------------------------------------------------- writing
def _tag_for(value: Any) -> int:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        if value >= 0:
            for tag, limit in ((UINT8, 1 << 8), (UINT16, 1 << 16), (UINT32, 1 << 32), (UINT64, 1 << 64)):
                if value < limit:
                    return tag
        else:
            for tag, bits in ((INT8, 7), (INT16, 15), (INT32, 31), (INT64, 63)):
                if value >= -(1 << bits):
                    return tag
        raise ParamsError(f"integer {value} does not fit 64 bits")
    if isinstance(value, float):
        return FLOAT32 if _FLT_MIN <= value <= _FLT_MAX else FLOAT64
    if isinstance(value, str):
        return STRING
    if isinstance(value, (bytes, bytearray)):
        return BYTES
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return STRING_LIST
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return INT32_LIST
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return FLOAT_LIST
    if hasattr(value, "item"):  # numpy scalar
        return _tag_for(value.item())
    raise ParamsError(f"unsupported parameter value {value!r}")


def encode_params(params: Mapping[str, Any]) -> bytes:
    """Encode a dict as SL_PARAMSv1 bytes, choosing types the way MLTK's writer does."""
    b = flatbuffers.Builder(1024)
    entries = []
    for key, value in params.items():
        if value is None:
            continue
        if hasattr(value, "item") and not isinstance(value, (list, tuple)):
            value = value.item()
        tag = _tag_for(value)
        value_off = _build_value(b, tag, value)
        key_off = b.CreateString(str(key))
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(2, value_off, 0)
        b.PrependUOffsetTRelativeSlot(0, key_off, 0)
        b.PrependUint8Slot(1, tag, 0)
        entries.append(b.EndObject())
    b.StartVector(4, len(entries), 4)
    for off in reversed(entries):
        b.PrependUOffsetTRelative(off)
    vec = b.EndVector()
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(1, vec, 0)
    b.PrependUint8Slot(0, SCHEMA_VERSION, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def _build_value(b: flatbuffers.Builder, tag: int, value: Any) -> int:
    if tag in _SCALARS:
        flags, _, _ = _SCALARS[tag]
        b.StartObject(1)
        b.PrependSlot(flags, 0, value, None)  # default None: always written
        return b.EndObject()
    if tag == STRING:
        data = b.CreateString(value)
    elif tag == BYTES:
        data = b.CreateByteVector(bytes(value))
    elif tag == STRING_LIST:
        strings = [b.CreateString(s) for s in value]
        b.StartVector(4, len(strings), 4)
        for s in reversed(strings):
            b.PrependUOffsetTRelative(s)
        data = b.EndVector()
    else:
        fmt, size = ("i", 4) if tag == INT32_LIST else ("f", 4)
        b.StartVector(size, len(value), size)
        for v in reversed(list(value)):
            (b.PrependInt32 if fmt == "i" else b.PrependFloat32)(int(v) if fmt == "i" else float(v))
        data = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, data, 0)
    return b.EndObject()


def write_params(model: bytes, params: Mapping[str, Any]) -> bytes:
    """Return `model` with its SL_PARAMSv1 entry replaced (or added) by `params`."""
    return write_metadata(model, METADATA_NAME, encode_params(params))


def write_metadata(model: bytes, name: str, payload: bytes) -> bytes:
    """Return `model` with its metadata entry `name` replaced (or added) by `payload`."""
    import numpy as np

    find_metadata(model, name)  # validates the identifier before the heavy unpack
    schema = tflite_file.schema()
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    data = np.frombuffer(payload, dtype=np.uint8)
    for md in m.metadata or []:
        key = md.name.decode() if isinstance(md.name, bytes) else md.name
        if key == name:
            m.buffers[md.buffer].data = data
            break
    else:
        buf = schema.BufferT()
        buf.data = data
        m.buffers.append(buf)
        md = schema.MetadataT()
        md.name = name
        md.buffer = len(m.buffers) - 1
        m.metadata = (m.metadata or []) + [md]
    b = flatbuffers.Builder(len(model) + len(payload) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def merge_params(model: bytes, updates: Mapping[str, Any], remove: Iterable[str] = ()) -> bytes:
    """Update some keys of a model's parameters, keeping the others and their order."""
    params = read_params(model)
    for key in remove:
        params.pop(key, None)
    params.update(updates)
    return write_params(model, params)
