"""The wire form of every message: a UTF-8 JSON object with `"v": 1` and `"type"`.

`Message` maps a frozen dataclass's fields to JSON keys and back, checking each value
against the field's type hint (`typed.py`), so no message hand-writes its decoding. A class
may add cross-field rules in `check()`. Decoding failures raise `MessageError` with one line
naming the problem, so a daemon can log and ignore a malformed message. Unknown keys are
ignored (forward compatibility); a different major version is refused.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Mapping, Type, TypeVar, Union

from .errors import MessageError
from .typed import FieldError, decode_dataclass

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # a chunk is binary; JSON messages are small

T = TypeVar("T", bound="Message")


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON (sorted so signatures and tests see one canonical form)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def parse_object(payload: Union[bytes, str], expected_type: str) -> dict[str, Any]:
    """Decode a JSON object of the given `type` (checks size, encoding, version, type)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageError(f"{expected_type} message too large ({len(payload)} bytes)")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError(f"{expected_type} message is not JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise MessageError(f"{expected_type} message is not a JSON object")
    if obj.get("v") != SCHEMA_VERSION:
        raise MessageError(f"{expected_type} message has unsupported schema version {str(obj.get('v'))[:20]!r}")
    if obj.get("type") != expected_type:
        raise MessageError(f"expected a {expected_type} message, got type {str(obj.get('type'))[:40]!r}")
    return obj


class Message:
    """Base of every message: dataclass fields are the JSON keys (plus `v` and `type`)."""

    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        d.update(v=SCHEMA_VERSION, type=self.TYPE)
        return d

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls: Type[T], payload: Union[bytes, str]) -> T:
        return cls.from_dict(parse_object(payload, cls.TYPE))

    @classmethod
    def from_dict(cls: Type[T], obj: Mapping[str, Any]) -> T:
        """Decode and check a message from its JSON object (the `v`/`type` keys are ignored)."""
        try:
            msg = decode_dataclass(cls, obj)
        except FieldError as exc:
            raise MessageError(f"{cls.TYPE} message field {exc}") from None
        except (TypeError, ValueError) as exc:  # a field's own __post_init__ rule
            raise MessageError(f"{cls.TYPE} message: {exc}") from None
        msg.check()
        return msg

    def check(self) -> None:
        """Cross-field rules of a message type (`MessageError`); none by default."""
