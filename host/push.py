"""`keywire push`: sign a model, leave it on the broker, follow every targeted device to the end.

1. Read the retained status of every device (who exists, in which groups, running what).
2. Publish the chunks (retained, QoS 1, windowed) then the signed manifest on the *desired*
   topic of each device, group or the whole fleet (retained, so offline devices pick it up).
3. With `canary=N`: first N devices only; the rest only if all N report the model active.
4. Follow per-device progress until every target reports the model active or failed, or the
   wait ends; devices still pending are re-read from their retained status every few seconds
   (a broker may drop live reports past its queue limit). If the broker restarts meanwhile,
   chunks and manifests are published again. Only reports that name this push's manifest
   (`Manifest.push_id`) count: an earlier push's outcome of the same model, or the refusal of
   a forged copy, is not this push's answer.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keywire.protocol.errors import ConfigError
from keywire.protocol.errors import FleetError
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.manifest import DEFAULT_CHUNK_SIZE, Manifest, build_manifest, split
from keywire.protocol.messages import ACTIVE, FINAL_STATES, REJECTED, ROLLED_BACK, Progress, Status
from keywire.protocol.topics import check_name

from .fleet_client import FleetClient


@dataclass(frozen=True)
class PushTarget:
    devices: tuple[str, ...] = ()
    group: str = ""
    all: bool = False

    def validate(self) -> "PushTarget":
        chosen = sum([bool(self.devices), bool(self.group), self.all])
        if chosen != 1:
            raise ConfigError("choose exactly one target: --device ID (repeatable), --group G or --all")
        for d in self.devices:
            check_name("device id", d)
        if self.group:
            check_name("group", self.group)
        return self


@dataclass(frozen=True)
class PushOptions:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    canary: int = 0
    wait_s: float = 300.0
    window: int = 8
    settle_s: float = 0.5
    name: Optional[str] = None
    version: Optional[str] = None


@dataclass
class DeviceProgress:
    device_id: str
    state: str = "waiting"
    received: int = 0
    total: int = 0
    reason: str = ""
    online: bool = False

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def ok(self) -> bool:
        return self.state == ACTIVE


@dataclass
class PushResult:
    manifest: Manifest
    devices: dict[str, DeviceProgress] = field(default_factory=dict)
    canary_failed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.devices) and all(d.ok for d in self.devices.values()) and not self.canary_failed

    def failures(self) -> list[DeviceProgress]:
        return [d for d in self.devices.values() if not d.ok]


class PushEngine:
    """One push of one model to a set of devices."""

    def __init__(self, settings: MqttSettings, fleet: str, key: Ed25519PrivateKey,
                 on_update: Optional[Callable[[DeviceProgress], None]] = None) -> None:
        self.settings = settings.validate()
        self.fleet = check_name("fleet name", fleet)
        self.key = key
        self.on_update = on_update
        self._lock = threading.Lock()
        self._progress: dict[str, DeviceProgress] = {}
        self._manifest: Optional[Manifest] = None
        self._changed = threading.Event()

    # ------------------------------------------------------------ incoming
    def _track(self, device: str) -> Optional[DeviceProgress]:
        return self._progress.get(device)

    def _on_progress(self, p: Progress) -> None:
        m = self._manifest
        if m is None or p.sha256 != m.sha256 or p.manifest != m.push_id:
            return  # about another manifest: an earlier push, or a forged copy of this one
        with self._lock:
            d = self._track(p.device_id)
            if d is None or (d.done and p.state not in (ROLLED_BACK,)):
                return
            d.state, d.received, d.total, d.reason = p.state, p.received, p.total, p.reason
        self._notify(d)

    def _on_status(self, s: Status) -> None:
        m = self._manifest
        if m is None:
            return
        with self._lock:
            d = self._track(s.device_id)
            if d is None:
                return
            d.online = s.online
            if s.model is not None and s.model.sha256 == m.sha256 and d.state != ACTIVE:
                d.state, d.received, d.total, d.reason = ACTIVE, m.n_chunks, m.n_chunks, ""
            elif s.last_push.get("manifest") == m.push_id and s.last_push.get("state") in (REJECTED, ROLLED_BACK) \
                    and not d.done:  # only this push's outcome, never a stale or forged one
                d.state, d.reason = s.last_push["state"], str(s.last_push.get("reason", ""))
            else:
                return
        self._notify(d)

    def _notify(self, d: DeviceProgress) -> None:
        self._changed.set()
        if self.on_update:
            self.on_update(d)

    # ------------------------------------------------------------ the push
    def push(self, model: bytes, target: PushTarget, options: PushOptions = PushOptions()) -> PushResult:
        target.validate()
        if options.canary < 0:
            raise ConfigError("--canary must be >= 0")
        manifest = build_manifest(model, self.key, options.chunk_size, name=options.name, version=options.version)
        chunks = list(split(model, manifest.chunk_size))
        client = FleetClient(self.settings, self.fleet, window=options.window,
                             on_progress=self._on_progress, on_status=self._on_status)
        started = time.monotonic()
        client.connect()
        try:
            client.settle(options.settle_s)
            devices = self._resolve(client, target)
            with self._lock:
                self._manifest = manifest
                self._progress = {d: DeviceProgress(d) for d in devices}
            for s in list(client.status.values()):  # devices already running the model
                self._on_status(s)
            result = PushResult(manifest, self._progress)
            client.reconnected.clear()
            self._publish_chunks(client, manifest, chunks)
            canaries = sorted(devices, key=lambda d: (not self._online(client, d), d))[:options.canary] \
                if 0 < options.canary < len(devices) else []
            deadline = started + options.wait_s
            published: list[str] = []
            if canaries:
                published += self._publish_desired(client, manifest, [client.topics.device(d).desired for d in canaries])
                self._wait(client, manifest, chunks, canaries, published, deadline)
                if not all(self._progress[d].ok for d in canaries):
                    result.canary_failed = True
                    for d in devices:
                        if d not in canaries and not self._progress[d].done:
                            self._progress[d].reason = "not pushed: a canary device failed"
                    result.seconds = time.monotonic() - started
                    return result
            if target.all:
                topics = [client.topics.desired_all()]
            elif target.group:
                topics = [client.topics.desired_group(target.group)]
            else:
                topics = [client.topics.device(d).desired for d in devices if d not in canaries]
            published += self._publish_desired(client, manifest, topics)
            self._wait(client, manifest, chunks, devices, published, deadline)
            for d in devices:
                p = self._progress[d]
                if not p.done:
                    p.reason = p.reason or (f"no answer within {options.wait_s:.0f} s"
                                            + (f" (received {p.received}/{p.total} chunks)" if p.total else "")
                                            + ("" if p.online else "; device offline"))
            result.seconds = time.monotonic() - started
            return result
        finally:
            client.close()

    def _online(self, client: FleetClient, device: str) -> bool:
        s = client.status.get(device)
        return bool(s and s.online)

    def _resolve(self, client: FleetClient, target: PushTarget) -> list[str]:
        if target.devices:
            return sorted(set(target.devices))
        with client.lock:
            known = dict(client.status)
        if target.group:
            devices = sorted(d for d, s in known.items() if target.group in s.groups)
            if not devices:
                raise FleetError(f"no device of fleet {self.fleet!r} is in group {target.group!r}")
            return devices
        if not known:
            raise FleetError(f"no device of fleet {self.fleet!r} has reported to this broker")
        return sorted(known)

    def _publish_chunks(self, client: FleetClient, m: Manifest, chunks: list[bytes]) -> None:
        for i, c in enumerate(chunks):
            client.publish(client.topics.chunk(m.sha256, i), c, retain=True)
        client.flush()

    def _publish_desired(self, client: FleetClient, m: Manifest, topics: list[str]) -> list[str]:
        payload = m.to_json()
        for t in topics:
            client.publish(t, payload, retain=True)
        client.flush()
        return topics

    def _wait(self, client: FleetClient, m: Manifest, chunks: list[bytes], devices: list[str],
              published: list[str], deadline: float, refresh_s: float = 3.0, batch: int = 100) -> None:
        next_refresh = time.monotonic() + refresh_s
        while time.monotonic() < deadline:
            with self._lock:
                pending = [d for d in devices if not self._progress[d].done]
            if not pending:
                client.refresh_status([])
                return
            if time.monotonic() >= next_refresh:
                client.refresh_status(pending[:batch])
                next_refresh = time.monotonic() + refresh_s
            if client.reconnected.is_set():
                # the broker restarted: it may have lost retained messages, so send them again
                client.reconnected.clear()
                self._publish_chunks(client, m, chunks)
                self._publish_desired(client, m, published)
            self._changed.wait(0.1)
            self._changed.clear()
