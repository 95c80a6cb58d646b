"""Detections and the responders that act on them (stdout JSON, log, LED).

A `Detection` is the one event type every responder receives, whether it was raised by
the local pipeline or relayed from a board; MQTT and the journal are responders too.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol, Sequence, TextIO

log = logging.getLogger("keywire.events")


@dataclass(frozen=True)
class Detection:
    """One keyword detection. `score` is 0-255 (MLTK's uint8 convention)."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Detection":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> "Detection":
        return cls.from_dict(json.loads(text))


class EventSink(Protocol):
    """A responder: gets every detection; must not block the audio loop for long."""

    def emit(self, detection: Detection) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """One JSON object per line (the command-line contract of `keywire-agent run`)."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, detection: Detection) -> None:
        self.stream.write(detection.to_json() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class LogSink:
    """A log line per detection (journal fields are added by the service module)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def emit(self, detection: Detection) -> None:
        self.logger.info("detected %s score=%d at %d ms (model %s)", detection.keyword, detection.score,
                         detection.time_ms, detection.model_name,
                         extra={"detection": detection})

    def close(self) -> None:
        pass


class FanOut:
    """Sends each detection to every sink; a failing sink is logged, never fatal."""

    def __init__(self, sinks: Sequence[EventSink] = ()) -> None:
        self.sinks = list(sinks)

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def emit(self, detection: Detection) -> None:
        for sink in self.sinks:
            try:
                sink.emit(detection)
            except Exception:  # a responder must never stop listening
                log.exception("event sink %s failed", type(sink).__name__)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing event sink %s failed", type(sink).__name__)
