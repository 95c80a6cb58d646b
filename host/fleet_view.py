"""`keywire fleet status` and `keywire watch`: the fleet as the broker's retained messages show it,
and its live detections."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from keywire.protocol.messages import Detection
from keywire.protocol.errors import FleetError, MessageError
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.messages import Command, Reply
from keywire.protocol.topics import FleetTopics, check_name
from keywire.protocol.text import printable

from .fleet_client import FleetClient


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    online: bool
    model: str
    version: str
    sha256: str
    last_seen: float
    detections_per_hour: float
    groups: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"] = list(self.groups)
        return d


def fleet_status(settings: MqttSettings, fleet: str, settle_s: float = 0.5,
                 connect_timeout_s: float = 10.0) -> list[DeviceRow]:
    """Every device that ever reported to this broker, from retained status and telemetry."""
    client = FleetClient(settings, fleet).connect(connect_timeout_s)
    try:
        client.settle(settle_s)
        with client.lock:
            status, telemetry = dict(client.status), dict(client.telemetry)
    finally:
        client.close()
    rows = []
    for dev, s in sorted(status.items()):
        t = telemetry.get(dev)
        rows.append(DeviceRow(
            device_id=dev, online=s.online, model=s.model.name if s.model else "",
            version=s.model.version if s.model else "", sha256=s.model.sha256 if s.model else "",
            last_seen=max(s.time, t.time if t else 0.0),
            detections_per_hour=round(sum(t.detections_per_hour.values()), 2) if t else 0.0,
            groups=s.groups, reason=s.reason))
    return rows


def send_command(settings: MqttSettings, fleet: str, device: str, action: str, detection: dict,
                 timeout: float = 10.0) -> Reply:
    """Publish a command to one device and wait for its reply (matched by command id)."""
    cid = uuid.uuid4().hex[:12]
    cmd = Command(action, cid, detection)
    Command.from_dict(cmd.to_dict())  # the same checks the device applies
    client = FleetClient(settings, fleet).connect()
    try:
        client.publish(client.topics.device(check_name("device id", device)).command, cmd.to_json())
        client.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with client.lock:
                reply = next((r for r in client.replies if r.id == cid), None)
            if reply is not None:
                return reply
            time.sleep(0.05)
    finally:
        client.close()
    raise FleetError(f"no reply from {device} within {timeout:.0f} s (offline?)")


def format_rows(rows: list[DeviceRow], now: Optional[float] = None) -> str:
    """The status table (rich), its headers explained under it; every device-supplied field is
    escaped (`printable`) and bounded."""
    from .tables import render_text, table

    now = now or time.time()
    out = []
    for r in rows:
        ago = now - r.last_seen if r.last_seen else float("nan")
        seen = "never" if not r.last_seen else (f"{ago:.0f}s ago" if ago < 120 else f"{ago / 60:.0f}m ago"
                                                if ago < 7200 else f"{ago / 3600:.0f}h ago")
        out.append((printable(r.device_id, 64), "yes" if r.online else "no", printable(r.model, 18),
                    printable(r.version, 10), seen, f"{r.detections_per_hour:.1f}", printable(r.reason)))
    return render_text(table("", ("device", "online", "model", "version", "last seen", "det/h", "note"), out,
                             caption="last seen: since the device's last status or telemetry; det/h: detections "
                                     "in the last hour; note: the last rejected push or failed command",
                             right=(4, 5)))


class Watcher:
    """Live detections of the whole fleet, each event id once (re-deliveries are dropped)."""

    def __init__(self, settings: MqttSettings, fleet: str, on_detection: Callable[[Detection, dict], None],
                 remember: int = 10000) -> None:
        self.on_detection = on_detection
        self._seen: "OrderedDict[str, None]" = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        self.client = FleetClient(settings, fleet, extra_topics=(FleetTopics(fleet).all_events(),),
                                  on_other=self._on_other)

    def _on_other(self, topic: str, payload: bytes) -> None:
        if not topic.endswith("/event"):
            return
        try:
            d = Detection.from_json(payload)  # the message checks its own wire form
        except MessageError:
            return
        raw = json.loads(payload)
        with self._lock:
            if d.event_id in self._seen:
                return
            self._seen[d.event_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        self.on_detection(d, raw)

    def start(self) -> "Watcher":
        self.client.connect()
        return self

    def close(self) -> None:
        self.client.close()


def format_detection(d: Detection) -> str:
    """One line per detection for `keywire watch`; device-supplied text escaped and bounded."""
    t = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.wall_time))
    return (f"{t} {printable(d.device_id, 64):<16} {printable(d.keyword, 64):<12} score={d.score:<3} "
            f"model={printable(d.model_name, 64)} v{printable(d.model_version, 32)} id={printable(d.event_id, 64)}")
