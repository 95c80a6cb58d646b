"""What the device tells the fleet about itself: retained status, last will, telemetry,
push progress, Home Assistant discovery.

`StatusPublisher` owns the outcome of the last push and the last failure reason, builds the
`Status` message from the agent's view (`AgentContext`), keeps the broker's copy of the last
will naming the model actually running, and turns the audio loop's counters into telemetry.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

from keywire.protocol.messages import ACTIVE, REJECTED, ROLLED_BACK, ModelInfo, Progress, Status
from keywire.protocol.topics import DeviceTopics

from ..component import AgentContext
from ..model import KeywordModel
from .hass import discovery_messages
from .spool import Spool
from .store import ModelStore
from .telemetry import TelemetryMeter
from .transport import FleetTransport, Will

log = logging.getLogger("keywire.fleet")


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("keywire")
    except Exception:  # pragma: no cover - not installed
        return "0"


def model_info(model: KeywordModel) -> ModelInfo:
    return ModelInfo(model.name, model.version, model.sha256, tuple(model.classes))


class StatusPublisher:
    """Status (retained), will, telemetry, progress and discovery of one device."""

    def __init__(self, device: DeviceTopics, groups: tuple[str, ...], store: ModelStore, spool: Spool,
                 meter: TelemetryMeter, transport: FleetTransport, ha_prefix: Optional[str] = None) -> None:
        """`ha_prefix`: announce the device to Home Assistant under this prefix (None: don't)."""
        self.device = device
        self.groups = groups
        self.store = store
        self.spool = spool
        self.meter = meter
        self.transport = transport
        self.ha_prefix = ha_prefix
        self.version = software_version()
        self.agent: Optional[AgentContext] = None
        self.last_push: dict[str, Any] = {}
        self.reason = ""
        self._will_sha = ""  # the model the broker's copy of our last will names

    def status(self, online: bool = True) -> Status:
        agent = self.agent
        model = detection = board = None
        uptime = 0.0
        if agent is not None:
            model = model_info(agent.model)
            detection = agent.detection_for(agent.model).to_params()
            ignored = agent.config.detection.conflicts(len(agent.model.classes))
            if ignored:
                detection["ignored_overrides"] = ignored
            uptime = round(time.monotonic() - agent.started_at, 3)
            board = agent.component_status().get("board")
        return Status(device_id=self.device.device_id, online=online, time=time.time(), model=model,
                      previous_model=self.store.state().previous, detection=detection or {}, uptime_s=uptime,
                      software_version=self.version, groups=self.groups, last_push=dict(self.last_push),
                      reason=self.reason, board=board)

    def will(self) -> Will:
        """The offline status the broker publishes (retained) if this device vanishes."""
        self._will_sha = self.agent.model.sha256 if self.agent is not None else ""
        return self.device.status, self.status(online=False).to_json(), True

    def publish_status(self) -> None:
        self.transport.publish(self.device.status, self.status().to_json(), qos=1, retain=True)
        if self.agent is not None and self.agent.model.sha256 != self._will_sha:
            # The will still names the model from connect time; a device that dies now must
            # not be shown offline with a model it no longer runs.
            self.transport.renew_will(self.will())

    def fail(self, reason: str) -> None:
        """Something the operator should see in the status (a refused command, ...)."""
        self.reason = reason
        self.publish_status()

    def publish_telemetry(self) -> None:
        if self.agent is None:
            return
        stats = self.agent.stats()
        t = self.meter.report(stats.inferences, stats.latencies_ms, self.agent.audio_status().dropped_samples,
                              len(self.spool), self.spool.dropped, self.spool.corrupt)
        self.transport.publish(self.device.telemetry, t.to_json(), qos=0, retain=True)  # last figures for `fleet status`

    def publish_discovery(self) -> None:
        if self.ha_prefix is None or self.agent is None:
            return
        for topic, payload in discovery_messages(self.device, self.agent.model.classes, self.version,
                                                 self.ha_prefix):
            self.transport.publish(topic, payload, qos=1, retain=True)

    def report(self, p: Progress) -> None:
        """A push step: on the push topic; final outcomes also in the retained status."""
        self.transport.publish(self.device.progress, p.to_json(), qos=1)
        if p.state in (ACTIVE, REJECTED, ROLLED_BACK):
            self.last_push = {"sha256": p.sha256, "version": p.version, "state": p.state, "reason": p.reason,
                              "time": p.time, "manifest": p.manifest}
            self.reason = p.reason if p.state != ACTIVE else ""
            self.publish_status()
