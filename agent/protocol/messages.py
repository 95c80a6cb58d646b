"""Typed fleet messages. Each is a frozen dataclass whose fields are its JSON keys; the
`Message` base (`wire.py`) encodes and decodes them all, so a class states only its fields
and, where needed, the rules between them (`check`).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from .detection import DetectionOverrides
from .errors import KeywireError, MessageError
from .wire import MAX_MESSAGE_BYTES, SCHEMA_VERSION, Message, dumps, parse_object

__all__ = ["MAX_MESSAGE_BYTES", "SCHEMA_VERSION", "Message", "dumps", "parse_object", "ModelInfo", "Status",
           "Telemetry", "Progress", "Command", "Reply", "Detection", "COMMAND_ACTIONS", "FINAL_STATES",
           "PUSH_STATES", "RECEIVING", "VERIFYING", "SELF_TEST", "ACTIVE", "REJECTED", "ROLLED_BACK"]


@dataclass(frozen=True)
class ModelInfo:
    """What identifies a model in status messages."""

    name: str
    version: str
    sha256: str
    classes: tuple[str, ...] = ()


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
    spool_dropped: int = 0     # detections refused since start (spool full or write failed)
    spool_corrupt: int = 0     # damaged spool records skipped since start (checksum)


# Push progress states reported by a device for one model (docs/FLEET.md).
RECEIVING, VERIFYING, SELF_TEST, ACTIVE, REJECTED, ROLLED_BACK = (
    "receiving", "verifying", "self_test", "active", "rejected", "rolled_back")
PUSH_STATES = (RECEIVING, VERIFYING, SELF_TEST, ACTIVE, REJECTED, ROLLED_BACK)
FINAL_STATES = (ACTIVE, REJECTED, ROLLED_BACK)


@dataclass(frozen=True)
class Progress(Message):
    """`.../push`: a device's per-chunk acknowledgement and outcome for one model.

    `manifest` is the `Manifest.push_id` of the manifest the report answers ('' when it
    answers none that could be parsed): a host takes only reports about what it published."""

    TYPE: ClassVar[str] = "progress"
    device_id: str
    sha256: str
    state: str
    received: int = 0
    total: int = 0
    reason: str = ""
    version: str = ""
    time: float = 0.0
    manifest: str = ""

    def check(self) -> None:
        if self.state not in PUSH_STATES:
            raise MessageError(f"progress message has unknown state {self.state[:40]!r}")


COMMAND_ACTIONS = ("reload", "set_detection", "rollback", "status")


@dataclass(frozen=True)
class Command(Message):
    """`.../cmd` (host -> device): reload, set_detection, rollback, status. Data only; a device
    never executes anything it receives. `detection` uses the detection table's MLTK names;
    `overrides()` checks every value against its limits (the device replies with the error,
    under the command's id, and changes nothing)."""

    TYPE: ClassVar[str] = "command"
    action: str
    id: str = ""
    detection: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.action not in COMMAND_ACTIONS:
            raise MessageError(f"unknown command {self.action[:40]!r} (known: {', '.join(COMMAND_ACTIONS)})")
        if self.action == "set_detection" and not self.detection:
            raise MessageError("set_detection needs a 'detection' object")

    def overrides(self) -> DetectionOverrides:
        """The `detection` body as checked overrides (`MessageError` naming field, value, range)."""
        try:
            return DetectionOverrides.from_mapping(self.detection, MessageError, "set_detection: ")
        except KeywireError as exc:
            raise MessageError(str(exc)) from None


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


@dataclass(frozen=True)
class Detection(Message):
    """One keyword detection (`.../event`, and a line of `keywire-agent run`'s stdout).
    `score` is 0-255 (MLTK's uint8 convention); `event_id` makes re-deliveries recognisable."""

    TYPE: ClassVar[str] = "detection"
    keyword: str
    score: int
    time_ms: int                       # stream time from the start of the audio source
    class_index: int = -1
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    device_id: str = ""
    source: str = "local"              # "local" or the board identity for relayed detections
    wall_time: float = field(default_factory=time.time)
    monotonic: float = field(default_factory=time.monotonic)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def check(self) -> None:
        if not 0 <= self.score <= 255:
            raise MessageError(f"detection score {self.score} is out of range 0..255")
        if not 0 < len(self.event_id) <= 64:
            raise MessageError("detection event_id must be 1..64 characters")
