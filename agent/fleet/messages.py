"""Typed fleet messages and their wire form: UTF-8 JSON objects with `"v": 1` and `"type"`.

Every message class knows `to_json() -> bytes` and `from_json(bytes)`; `from_json` checks the
schema and raises `MessageError` with one line naming the problem, so a daemon can log and
ignore a malformed message. Unknown keys are ignored (forward compatibility); a different
major version is refused.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Type, TypeVar

from .errors import MessageError

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # a chunk is binary; JSON messages are small

T = TypeVar("T", bound="Message")


def parse_object(payload: bytes, expected_type: str) -> dict[str, Any]:
    """Decode a JSON object of the given `type` (checks size, encoding, version, type)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageError(f"{expected_type} message too large ({len(payload)} bytes)")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"{expected_type} message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MessageError(f"{expected_type} message is not a JSON object")
    if obj.get("v") != SCHEMA_VERSION:
        raise MessageError(f"{expected_type} message has unsupported schema version {obj.get('v')!r}")
    if obj.get("type") != expected_type:
        raise MessageError(f"expected a {expected_type} message, got type {obj.get('type')!r}")
    return obj


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON (sorted so signatures and tests see one canonical form)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _typed(obj: Mapping[str, Any], name: str, kind: Any, msg_type: str, optional: bool = False) -> Any:
    v = obj.get(name)
    if v is None and optional:
        return None
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if not isinstance(v, kind) or (kind in (int, float) and isinstance(v, bool)):
        raise MessageError(f"{msg_type} message field {name!r} must be {getattr(kind, '__name__', kind)}, "
                           f"got {type(v).__name__}")
    return v


class Message:
    """Base: dataclass fields are the JSON keys (plus `v` and `type`)."""

    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        d.update(v=SCHEMA_VERSION, type=self.TYPE)
        return d

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls: Type[T], payload: bytes) -> T:
        return cls.from_dict(parse_object(payload, cls.TYPE))

    @classmethod
    def from_dict(cls: Type[T], obj: Mapping[str, Any]) -> T:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class ModelInfo:
    """What identifies a model in status messages."""

    name: str
    version: str
    sha256: str
    classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, obj: Any) -> "ModelInfo":
        if not isinstance(obj, dict):
            raise MessageError("model info must be an object")
        classes = obj.get("classes") or []
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise MessageError("model info 'classes' must be a list of strings")
        return cls(str(obj.get("name", "")), str(obj.get("version", "")), _typed(obj, "sha256", str, "model"),
                   tuple(classes))


@dataclass(frozen=True)
class Status(Message):
    """Retained `.../status`: online/offline, active model, detection settings, last push outcome.

    The broker publishes the offline form as the device's last will."""

    TYPE: ClassVar[str] = "status"
    device_id: str
    online: bool
    time: float = 0.0
    model: Optional[ModelInfo] = None
    previous_model: Optional[ModelInfo] = None
    detection: dict[str, Any] = field(default_factory=dict)
    uptime_s: float = 0.0
    software_version: str = ""
    groups: tuple[str, ...] = ()
    last_push: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    board: Optional[dict[str, Any]] = None   # BRD2601 link state when a board is attached

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict() if self.model else None
        d["previous_model"] = self.previous_model.to_dict() if self.previous_model else None
        d["groups"] = list(self.groups)
        d.update(v=SCHEMA_VERSION, type=self.TYPE)
        return d

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Status":
        t = cls.TYPE
        groups = obj.get("groups") or []
        if not isinstance(groups, list):
            raise MessageError("status message field 'groups' must be a list")
        return cls(
            device_id=_typed(obj, "device_id", str, t), online=_typed(obj, "online", bool, t),
            time=_typed(obj, "time", float, t, optional=True) or 0.0,
            model=ModelInfo.from_dict(obj["model"]) if obj.get("model") else None,
            previous_model=ModelInfo.from_dict(obj["previous_model"]) if obj.get("previous_model") else None,
            detection=_typed(obj, "detection", dict, t, optional=True) or {},
            uptime_s=_typed(obj, "uptime_s", float, t, optional=True) or 0.0,
            software_version=str(obj.get("software_version", "")),
            groups=tuple(str(g) for g in groups),
            last_push=_typed(obj, "last_push", dict, t, optional=True) or {},
            reason=str(obj.get("reason", "")),
            board=_typed(obj, "board", dict, t, optional=True),
        )


@dataclass(frozen=True)
class Telemetry(Message):
    """Periodic `.../telemetry`: audio, inference rate and latency, detections, resources."""

    TYPE: ClassVar[str] = "telemetry"
    device_id: str
    time: float
    interval_s: float
    audio_level_dbfs: float = -120.0
    audio_activity: float = 0.0
    inferences_per_s: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    detections_per_hour: dict[str, float] = field(default_factory=dict)
    detections_total: dict[str, int] = field(default_factory=dict)
    dropped_audio: int = 0
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    spool_pending: int = 0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Telemetry":
        t = cls.TYPE
        kwargs: dict[str, Any] = {"device_id": _typed(obj, "device_id", str, t),
                                  "time": _typed(obj, "time", float, t),
                                  "interval_s": _typed(obj, "interval_s", float, t)}
        for name in ("audio_level_dbfs", "audio_activity", "inferences_per_s", "latency_ms_p50",
                     "latency_ms_p99", "cpu_percent"):
            if obj.get(name) is not None:
                kwargs[name] = _typed(obj, name, float, t)
        for name in ("dropped_audio", "rss_bytes", "spool_pending"):
            if obj.get(name) is not None:
                kwargs[name] = _typed(obj, name, int, t)
        for name in ("detections_per_hour", "detections_total"):
            if obj.get(name) is not None:
                kwargs[name] = dict(_typed(obj, name, dict, t))
        return cls(**kwargs)


# Push progress states reported by a device for one model (docs/FLEET.md).
RECEIVING, VERIFYING, SELF_TEST, ACTIVE, REJECTED, ROLLED_BACK = (
    "receiving", "verifying", "self_test", "active", "rejected", "rolled_back")
FINAL_STATES = (ACTIVE, REJECTED, ROLLED_BACK)


@dataclass(frozen=True)
class Progress(Message):
    """`.../push`: a device's per-chunk acknowledgement and outcome for one model."""

    TYPE: ClassVar[str] = "progress"
    device_id: str
    sha256: str
    state: str
    received: int = 0
    total: int = 0
    reason: str = ""
    version: str = ""
    time: float = 0.0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Progress":
        t = cls.TYPE
        state = _typed(obj, "state", str, t)
        if state not in (RECEIVING, VERIFYING, SELF_TEST, ACTIVE, REJECTED, ROLLED_BACK):
            raise MessageError(f"progress message has unknown state {state!r}")
        return cls(device_id=_typed(obj, "device_id", str, t), sha256=_typed(obj, "sha256", str, t), state=state,
                   received=_typed(obj, "received", int, t, optional=True) or 0,
                   total=_typed(obj, "total", int, t, optional=True) or 0,
                   reason=str(obj.get("reason", "")), version=str(obj.get("version", "")),
                   time=_typed(obj, "time", float, t, optional=True) or 0.0)


COMMAND_ACTIONS = ("reload", "set_detection", "rollback", "status")
_DETECTION_KEYS = {"detection_threshold": int, "detection_threshold_list": list, "average_window_duration_ms": int,
                   "suppression_ms": int, "minimum_count": int}


@dataclass(frozen=True)
class Command(Message):
    """`.../cmd` (host -> device): reload, set_detection, rollback, status. Data only; a device
    never executes anything it receives."""

    TYPE: ClassVar[str] = "command"
    action: str
    id: str = ""
    detection: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Command":
        t = cls.TYPE
        action = _typed(obj, "action", str, t)
        if action not in COMMAND_ACTIONS:
            raise MessageError(f"unknown command {action!r} (known: {', '.join(COMMAND_ACTIONS)})")
        det = _typed(obj, "detection", dict, t, optional=True) or {}
        for k, v in det.items():
            kind = _DETECTION_KEYS.get(k)
            if kind is None:
                raise MessageError(f"set_detection: unknown setting {k!r}")
            if kind is int and (not isinstance(v, int) or isinstance(v, bool)):
                raise MessageError(f"set_detection: {k} must be an integer")
            if kind is list and (not isinstance(v, list) or not all(isinstance(x, int) for x in v)):
                raise MessageError(f"set_detection: {k} must be a list of integers")
        if action == "set_detection" and not det:
            raise MessageError("set_detection needs a 'detection' object")
        return cls(action=action, id=str(obj.get("id", "")), detection=dict(det))


@dataclass(frozen=True)
class Reply(Message):
    """`.../reply` (device -> host): the outcome of one command."""

    TYPE: ClassVar[str] = "reply"
    device_id: str
    action: str
    ok: bool
    id: str = ""
    reason: str = ""
    time: float = 0.0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "Reply":
        t = cls.TYPE
        return cls(device_id=_typed(obj, "device_id", str, t), action=_typed(obj, "action", str, t),
                   ok=_typed(obj, "ok", bool, t), id=str(obj.get("id", "")), reason=str(obj.get("reason", "")),
                   time=_typed(obj, "time", float, t, optional=True) or 0.0)
