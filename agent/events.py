"""Detections and the responders that act on them (stdout JSON, log, LED).

A `Detection` is the one event type every responder receives, whether it was raised by
the local pipeline or relayed from a board; MQTT and the journal are responders too.
`Detection` and its wire form live in `keywire.protocol.messages` (the host reads it too).
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Protocol, Sequence, TextIO

from keywire.protocol.messages import Detection

__all__ = ["Detection", "EventSink", "StdoutSink", "LogSink", "FanOut"]

log = logging.getLogger("keywire.events")


class EventSink(Protocol):
    """A responder: gets every detection; must not block the audio loop for long."""

    def emit(self, detection: Detection) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """One JSON object per line (the command-line contract of `keywire-agent run`)."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, detection: Detection) -> None:
        self.stream.write(detection.to_json().decode("utf-8") + "\n")
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
