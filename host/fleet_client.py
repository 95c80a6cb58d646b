"""The host's MQTT session with a fleet: collects retained device status, telemetry, push
progress and replies, and publishes with a bounded window of unacknowledged QoS 1 messages
(so a broker's per-client queue limit never drops what the host sends)."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from keywire.protocol.errors import FleetError, MessageError
from keywire.protocol.mqtt_link import MqttLink, MqttSettings
from keywire.protocol.messages import Progress, Reply, Status, Telemetry
from keywire.protocol.topics import FleetTopics


class FleetClient:
    """Host side of the broker: a live view of the fleet plus windowed publishing."""

    def __init__(self, settings: MqttSettings, fleet: str, window: int = 8,
                 on_progress: Optional[Callable[[Progress], None]] = None,
                 on_status: Optional[Callable[[Status], None]] = None,
                 extra_topics: tuple[str, ...] = (),
                 on_other: Optional[Callable[[str, bytes], None]] = None) -> None:
        self.topics = FleetTopics(fleet)
        self.window = max(1, window)
        self.status: dict[str, Status] = {}
        self.telemetry: dict[str, Telemetry] = {}
        self.replies: list[Reply] = []
        self.on_progress = on_progress
        self.on_status = on_status
        self.on_other = on_other
        self.extra_topics = extra_topics
        self.lock = threading.Lock()
        self.last_message = time.monotonic()
        self.reconnected = threading.Event()
        self._outstanding: list = []
        self._refreshing: list[str] = []
        self.link = MqttLink(settings, on_message=self._on_message, on_connect=self._on_connect)

    def connect(self, timeout: float = 10.0) -> "FleetClient":
        self.link.start()
        if not self.link.wait_connected(timeout, fail_fast=True):
            self.link.close()
            raise FleetError(f"cannot connect to the broker at {self.link.settings.url}"
                             + (f" ({self.link.last_error})" if self.link.last_error else ""))
        return self

    def close(self) -> None:
        self.link.close()

    def _on_connect(self) -> None:
        t = self.topics
        for topic in (t.all_status(), t.all_telemetry(), t.all_progress(), t.all_replies()) + self.extra_topics:
            self.link.subscribe(topic, 1)
        if self.link.connects > 1:
            self.reconnected.set()

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.last_message = time.monotonic()
        device = FleetTopics.device_of(topic)
        kind = topic.rsplit("/", 1)[-1]
        try:
            if device and kind == "status" and payload:
                s = Status.from_json(payload)
                with self.lock:
                    self.status[device] = s
                if self.on_status:
                    self.on_status(s)
            elif device and kind == "telemetry" and payload:
                tm = Telemetry.from_json(payload)
                with self.lock:
                    self.telemetry[device] = tm
            elif device and kind == "push":
                p = Progress.from_json(payload)
                if self.on_progress:
                    self.on_progress(p)
            elif device and kind == "reply":
                with self.lock:
                    self.replies.append(Reply.from_json(payload))
            elif self.on_other:
                self.on_other(topic, payload)
        except MessageError:
            pass  # a foreign or malformed message on a fleet topic is not the host's problem

    def refresh_status(self, devices: list[str]) -> None:
        """Ask the broker again for these devices' retained status (subscribing to a topic
        delivers its retained message): a live update the broker dropped, e.g. past its queue
        limit while thousands of devices reported at once, is recovered from the retained copy."""
        if self._refreshing:
            self.link.client.unsubscribe(self._refreshing)
        self._refreshing = [self.topics.device(d).status for d in devices]
        if self._refreshing:
            self.link.client.subscribe([(t, 1) for t in self._refreshing])

    def settle(self, quiet_s: float = 0.5, max_s: float = 3.0) -> None:
        """Wait until retained messages stopped arriving (quiet for `quiet_s`)."""
        start = time.monotonic()
        while time.monotonic() - start < max_s:
            if time.monotonic() - max(self.last_message, start) >= quiet_s:
                return
            time.sleep(0.05)

    def publish(self, topic: str, payload: bytes, retain: bool = False, timeout: float = 60.0) -> None:
        """QoS 1 publish; blocks while `window` earlier messages are still unacknowledged."""
        self._outstanding.append(self.link.publish(topic, payload, qos=1, retain=retain))
        while len(self._outstanding) >= self.window:
            self._wait_first(timeout)

    def flush(self, timeout: float = 60.0) -> None:
        while self._outstanding:
            self._wait_first(timeout)

    def _wait_first(self, timeout: float) -> None:
        info = self._outstanding[0]
        deadline = time.monotonic() + timeout
        while not info.is_published():
            if time.monotonic() > deadline:
                raise FleetError(f"the broker did not acknowledge a message within {timeout:.0f} s")
            time.sleep(0.005)
        self._outstanding.pop(0)
