"""The signed description of a pushed model, and the chunks that carry its bytes.

The manifest names everything a device must check before it installs a model: size, SHA-256
of the whole file and of every chunk, the frontend settings and classes the model declares,
its input shape, and when it was issued. The Ed25519 signature covers all of it (the
canonical JSON without the `signature` key).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import signing, tflite_file
from .detection import LIMITS, MAX_CLASSES, check_values
from .errors import KeywireError, MessageError, ModelError
from .sl_params import read_params
from .tflite_file import MAX_DIMENSION, MAX_RANK
from .wire import Message, dumps

DEFAULT_CHUNK_SIZE = 32 * 1024  # well inside AWS IoT Core's 128 kB message limit
MAX_CHUNK_SIZE = 120 * 1024
MAX_MODEL_BYTES = 256 * 1024 * 1024   # a bound for parsing; each device sets its own, smaller one
MAX_TEXT = 128
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Manifest(Message):
    """A model's description, signed; every field is validated (`check`) before any use."""

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

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers: everything but the signature."""
        d = self.to_dict()
        d.pop("signature")
        return dumps(d)

    def signed(self, key: Ed25519PrivateKey) -> "Manifest":
        unsigned = dataclasses.replace(self, key_id=signing.key_id(key.public_key()), signature="")
        return dataclasses.replace(unsigned, signature=signing.sign(unsigned.signed_bytes(), key))

    @property
    def push_id(self) -> str:
        """The identity of this exact manifest, signature included: what a device's reports
        about it carry, so a push counts only answers to what it published (a forged copy of
        the same content, with no or a bad signature, has another id; a re-push another
        `issued_at`, so another id too)."""
        return hashlib.sha256(self.signed_bytes() + b"\0" + self.signature.encode()).hexdigest()

    def verify(self, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        signing.verify(self.signed_bytes(), self.signature, self.key_id, trusted)

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def chunk_length(self, index: int) -> int:
        if index < self.n_chunks - 1:
            return self.chunk_size
        return self.size - self.chunk_size * (self.n_chunks - 1)

    def check(self) -> None:
        """Digests are lowercase hex, text fields short and printable, sizes bounded, and the
        chunk count agrees with size and chunk size (all before any byte is downloaded)."""
        if not _HEX64.fullmatch(self.sha256):
            raise MessageError("manifest sha256 must be 64 lowercase hex digits")
        bad = next((i for i, c in enumerate(self.chunks) if not _HEX64.fullmatch(c)), None)
        if bad is not None:
            raise MessageError(f"manifest chunk {bad} digest must be 64 lowercase hex digits")
        for name, text in (("name", self.name), ("version", self.version)):
            if not 0 < len(text) <= MAX_TEXT or not text.isprintable():
                raise MessageError(f"manifest {name} must be 1..{MAX_TEXT} printable characters")
        if len(self.classes) > MAX_CLASSES or any(not 0 < len(c) <= MAX_TEXT or not c.isprintable()
                                                   for c in self.classes):
            raise MessageError(f"manifest classes must be at most {MAX_CLASSES} names of 1..{MAX_TEXT} "
                               f"printable characters")
        if len(self.input_shape) > MAX_RANK or any(not 0 < d <= MAX_DIMENSION for d in self.input_shape):
            raise MessageError(f"manifest input_shape {list(self.input_shape)[:MAX_RANK + 1]} is out of range")
        if self.key_id and not _KEY_ID.fullmatch(self.key_id):
            raise MessageError("manifest key_id must be 16 lowercase hex digits")
        if len(self.signature) > 200:
            raise MessageError("manifest signature is too long")
        if not 0 < self.size <= MAX_MODEL_BYTES or not 0 < self.chunk_size <= MAX_CHUNK_SIZE:
            raise MessageError(f"manifest size {self.size} / chunk_size {self.chunk_size} out of range "
                               f"(1..{MAX_MODEL_BYTES} / 1..{MAX_CHUNK_SIZE})")
        if self.n_chunks != -(-self.size // self.chunk_size):
            raise MessageError(f"manifest lists {self.n_chunks} chunks for {self.size} bytes "
                               f"in chunks of {self.chunk_size}")
        if self.detection:
            try:
                check_values(self.detection, MessageError, "manifest detection: ")
            except KeywireError as exc:
                raise MessageError(str(exc)) from None

    check_consistent = check


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
    detection = {k: params[k] for k in LIMITS if k in params}
    m = Manifest(name=str(name or params.get("name") or "model"), version=str(version or params.get("version") or "1"),
                 size=len(model), sha256=sha256_hex(model), chunk_size=chunk_size,
                 chunks=tuple(sha256_hex(c) for c in split(model, chunk_size)),
                 classes=tuple(str(c) for c in classes), frontend=_jsonable(frontend),
                 input_shape=tuple(input_shape_of(model)),
                 issued_at=float(issued_at if issued_at is not None else time.time()),
                 detection=_jsonable(detection))
    try:
        m.check()  # what a device will check: refuse here, before anything is published
    except MessageError as exc:
        raise ModelError(f"the model cannot be pushed: {exc}") from None
    return m.signed(key)


def input_shape_of(model: bytes) -> list[int]:
    """Input tensor shape from the model's flatbuffer (no interpreter needed)."""
    return tflite_file.input_shape(model)


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
