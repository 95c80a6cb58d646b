"""The fleet's connection: one supervised MQTT link and the one worker thread behind it.

paho's network thread only hands messages, connects and acknowledgements over to the worker
(`post`); every fleet job (commands, pushes, status, spool delivery) then runs on that one
thread, in order, so neither paho nor the audio loop ever waits on fleet work and no fleet
state needs a lock. A job that raises is logged; the worker survives anything a message causes.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Optional

from keywire.protocol.mqtt_link import MqttLink, MqttSettings

log = logging.getLogger("keywire.fleet")

Will = tuple[str, bytes, bool]           # topic, payload, retain
Job = Optional[tuple[Callable[..., None], tuple]]


class FleetTransport:
    """MQTT publish/subscribe for the fleet parts (the push receiver's `Transport` too)."""

    def __init__(self, settings: MqttSettings, max_inflight: int = 20) -> None:
        self.settings = settings
        self.max_inflight = max_inflight
        self.link: Optional[MqttLink] = None
        self._jobs: "queue.Queue[Job]" = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._closed = False

    def start(self, on_message: Callable[[str, bytes], None], on_connected: Callable[[], None],
              on_acked: Callable[[int], None], will: Will) -> None:
        """Start the worker and connect; the handlers run on the worker thread."""
        self.link = MqttLink(self.settings, on_message=lambda t, p: self.post(on_message, t, p),
                             on_connect=lambda: self.post(on_connected),
                             on_published=lambda mid: self.post(on_acked, mid),
                             will=will, max_inflight=self.max_inflight)
        self._worker = threading.Thread(target=self._run_worker, name="keywire-fleet", daemon=True)
        self._worker.start()
        self.link.start()

    # ------------------------------------------------------------ the worker
    def post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the worker thread (dropped once closed)."""
        if not self._closed:
            self._jobs.put((fn, args))

    def _run_worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except Exception:  # the fleet worker must survive anything a message causes
                log.exception("fleet job %s failed", getattr(fn, "__name__", fn))

    # ------------------------------------------------------------ MQTT
    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def state(self) -> str:
        return self.link.state.value if self.link is not None else "not started"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """The paho message info (its `mid` is acknowledged through `on_acked`); None before start."""
        if self.link is None:
            return None
        return self.link.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        if self.link is not None:
            self.link.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        if self.link is not None:
            self.link.unsubscribe(topic)

    def renew_will(self, will: Will) -> None:
        if self.link is not None:
            self.link.renew_will(will)

    def close(self, final: Callable[[], Optional[Will]] = lambda: None) -> None:
        """Finish queued jobs (up to 5 s), publish `final()` (the offline status), disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
        if self.link is not None:
            self.link.close(final=final())
