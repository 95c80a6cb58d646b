"""The signed description of a pushed model, and the chunks that carry its bytes.

The manifest names everything a device must check before it installs a model: size, SHA-256
of the whole file and of every chunk, the frontend settings and classes the model declares,
its input shape, and when it was issued. The Ed25519 signature covers all of it (the
canonical JSON without the `signature` key).
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ModelError
from ..params import read_params
from . import signing
from .errors import MessageError
from .messages import Message, SCHEMA_VERSION, _typed, dumps

DEFAULT_CHUNK_SIZE = 32 * 1024  # well inside AWS IoT Core's 128 kB message limit
MAX_CHUNK_SIZE = 120 * 1024


@dataclass(frozen=True)
class Manifest(Message):
    TYPE: ClassVar[str] = "manifest"
    name: str
    version: str
    size: int
    sha256: str
    chunk_size: int
    chunks: tuple[str, ...]
    classes: tuple[str, ...]
    frontend: dict[str, Any]
    input_shape: tuple[int, ...]
    issued_at: float
    key_id: str = ""
    signature: str = ""
    detection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["chunks"], d["classes"], d["input_shape"] = list(self.chunks), list(self.classes), list(self.input_shape)
        d.update(v=SCHEMA_VERSION, type=self.TYPE)
        return d

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers: everything but the signature."""
        d = self.to_dict()
        d.pop("signature")
        return dumps(d)

    def signed(self, key: Ed25519PrivateKey) -> "Manifest":
        unsigned = dataclasses.replace(self, key_id=signing.key_id(key.public_key()), signature="")
        return dataclasses.replace(unsigned, signature=signing.sign(unsigned.signed_bytes(), key))

    def verify(self, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        signing.verify(self.signed_bytes(), self.signature, self.key_id, trusted)

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def chunk_length(self, index: int) -> int:
        if index < self.n_chunks - 1:
            return self.chunk_size
        return self.size - self.chunk_size * (self.n_chunks - 1)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Manifest":
        t = cls.TYPE

        def str_list(name: str) -> tuple[str, ...]:
            v = _typed(obj, name, list, t)
            if not all(isinstance(x, str) for x in v):
                raise MessageError(f"manifest field {name!r} must be a list of strings")
            return tuple(v)

        shape = _typed(obj, "input_shape", list, t)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in shape):
            raise MessageError("manifest field 'input_shape' must be a list of integers")
        m = cls(name=_typed(obj, "name", str, t), version=_typed(obj, "version", str, t),
                size=_typed(obj, "size", int, t), sha256=_typed(obj, "sha256", str, t),
                chunk_size=_typed(obj, "chunk_size", int, t), chunks=str_list("chunks"),
                classes=str_list("classes"), frontend=dict(_typed(obj, "frontend", dict, t)),
                input_shape=tuple(shape), issued_at=_typed(obj, "issued_at", float, t),
                key_id=str(obj.get("key_id", "")), signature=str(obj.get("signature", "")),
                detection=dict(_typed(obj, "detection", dict, t, optional=True) or {}))
        m.check_consistent()
        return m

    def check_consistent(self) -> None:
        """Sizes and chunk count agree (before any byte is downloaded)."""
        if len(self.sha256) != 64:
            raise MessageError("manifest sha256 must be 64 hex digits")
        if self.size <= 0 or not 0 < self.chunk_size <= MAX_CHUNK_SIZE:
            raise MessageError(f"manifest size {self.size} / chunk_size {self.chunk_size} out of range")
        if self.n_chunks != -(-self.size // self.chunk_size):
            raise MessageError(f"manifest lists {self.n_chunks} chunks for {self.size} bytes "
                               f"in chunks of {self.chunk_size}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, chunk_size: int) -> Iterator[bytes]:
    for i in range(0, len(data), chunk_size):
        yield data[i:i + chunk_size]


def build_manifest(model: bytes, key: Ed25519PrivateKey, chunk_size: int = DEFAULT_CHUNK_SIZE,
                   name: Optional[str] = None, version: Optional[str] = None,
                   issued_at: Optional[float] = None) -> Manifest:
    """Describe and sign a .tflite model from its bytes and its embedded SL_PARAMSv1."""
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ModelError(f"chunk size must be 1..{MAX_CHUNK_SIZE} bytes")
    params = read_params(model)
    classes = params.get("classes")
    if not classes:
        raise ModelError("the model declares no classes (SL_PARAMSv1 'classes' is missing)")
    frontend = {k: v for k, v in params.items() if k.startswith("fe.")}
    detection = {k: params[k] for k in ("average_window_duration_ms", "detection_threshold",
                                        "detection_threshold_list", "suppression_ms", "minimum_count",
                                        "latency_ms") if k in params}
    m = Manifest(name=str(name or params.get("name") or "model"), version=str(version or params.get("version") or "1"),
                 size=len(model), sha256=sha256_hex(model), chunk_size=chunk_size,
                 chunks=tuple(sha256_hex(c) for c in split(model, chunk_size)),
                 classes=tuple(str(c) for c in classes), frontend=_jsonable(frontend),
                 input_shape=tuple(input_shape_of(model)),
                 issued_at=float(issued_at if issued_at is not None else time.time()),
                 detection=_jsonable(detection))
    return m.signed(key)


def input_shape_of(model: bytes) -> list[int]:
    """Input tensor shape from the model's flatbuffer (no interpreter needed)."""
    from ..interpreter import load_interpreter

    interp = load_interpreter(model)
    return [int(x) for x in interp.get_input_details()[0]["shape"]]


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            v = [x.item() if hasattr(x, "item") else x for x in v]
        elif hasattr(v, "item"):
            v = v.item()
        elif isinstance(v, bytes):
            continue
        out[k] = v
    return out
