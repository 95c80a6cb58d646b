"""Detections to the broker: spool on disk first, then publish with QoS 1, in order.

`DetectionUplink` is the fleet's event sink. `emit` appends the detection to the on-disk
spool (fsync) and asks the worker to deliver; delivery keeps at most `window` messages in
flight and acknowledges the spool up to the longest prefix the broker has confirmed, so an
agent crash or a broker outage loses nothing and a restart re-sends only what was never
confirmed. Young detections are also forwarded once to Home Assistant's event topic.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from keywire.protocol.messages import Detection
from keywire.protocol.topics import DeviceTopics

from .hass import fresh_detection, ha_event_topic
from .spool import Spool
from .telemetry import TelemetryMeter
from .transport import FleetTransport

log = logging.getLogger("keywire.fleet")


class DetectionUplink:
    """EventSink: every detection to the spool, then to `<device>/event` (QoS 1, in order)."""

    def __init__(self, device: DeviceTopics, spool: Spool, transport: FleetTransport, meter: TelemetryMeter,
                 window: int = 16, ha_max_event_age_s: float = 0.0) -> None:
        """`ha_max_event_age_s` > 0: also forward detections younger than that to Home Assistant."""
        self.device = device
        self.spool = spool
        self.transport = transport
        self.meter = meter
        self.window = window
        self.ha_max_event_age_s = ha_max_event_age_s
        self._inflight: dict[int, int] = {}   # paho mid -> spool seq
        self._sent_upto = 0
        self._ha_upto = 0
        self._done: set[int] = set()
        self._post: Callable[..., None] = transport.post

    # ------------------------------------------------------------ EventSink (audio/board threads)
    def emit(self, detection: Detection) -> None:
        """Spool (fsync) then publish QoS 1: nothing is lost while the broker is away."""
        if not detection.device_id:
            detection = dataclasses.replace(detection, device_id=self.device.device_id)
        if self.spool.append(self.device.event, detection.to_json()) is None:
            log.error("event spool full: detection %s dropped", detection.event_id)
        self.meter.count_detection(detection.keyword)
        self._post(self.pump)

    def close(self) -> None:
        """Nothing to do: the fleet service closes the spool after the last delivery."""

    # ------------------------------------------------------------ delivery (worker thread)
    def pump(self) -> None:
        """Publish spooled records not yet sent, keeping at most `window` in flight."""
        if not self.transport.connected:
            return
        for rec in self.spool.pending():
            if rec.seq <= self._sent_upto:
                continue
            if len(self._inflight) >= self.window:
                break
            info = self.transport.publish(rec.topic, rec.payload, qos=1)
            self._inflight[info.mid] = rec.seq
            self._sent_upto = rec.seq
            self._forward_to_ha(rec)

    def _forward_to_ha(self, rec) -> None:  # noqa: ANN001 - spool record
        """A young detection also goes to Home Assistant's topic (once per record, not retried)."""
        if self.ha_max_event_age_s <= 0 or rec.seq <= self._ha_upto or rec.topic != self.device.event:
            return
        self._ha_upto = rec.seq
        fresh = fresh_detection(rec.payload, self.ha_max_event_age_s)
        if fresh is not None:
            self.transport.publish(ha_event_topic(self.device), fresh, qos=1)

    def acked(self, mid: int) -> None:
        """The broker confirmed `mid`: acknowledge the spool up to the confirmed prefix."""
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        self._done.add(seq)
        last = 0
        for rec in self.spool.pending():
            if rec.seq not in self._done:
                break
            last = rec.seq
        if last:
            self.spool.ack(last)
            self._done = {s for s in self._done if s > last}
        self.pump()
