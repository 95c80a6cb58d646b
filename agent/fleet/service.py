"""The agent's fleet component: one device in the fleet over MQTT.

`FleetService` is the `AgentComponent` that composes the fleet's parts, each with one role:

    FleetTransport    the MQTT link and the one worker thread all fleet jobs run on
    DetectionUplink   the sink: detections to the on-disk spool, then to the broker (QoS 1)
    PushReceiver      signed model pushes: manifests, windowed chunk download
    ModelSwitcher     install, switch, health watch, confirm, roll back, reload
    CommandHandler    remote commands and their replies
    StatusPublisher   retained status, last will, telemetry, progress, HA discovery

Incoming messages are routed here (`_dispatch`); everything else lives in the parts.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from keywire.protocol.errors import ConfigError, ModelError
from keywire.protocol.manifest import sha256_hex
from keywire.protocol.messages import ModelInfo
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.signing import trusted_keys
from keywire.protocol.sl_params import read_params
from keywire.protocol.topics import DeviceTopics, FleetTopics, check_name

from ..component import AgentContext, Tick
from ..config import AgentConfig
from .commands import CommandHandler
from .hass import DEFAULT_MAX_EVENT_AGE_S
from .health import RunRecord
from .receiver import PushReceiver
from .spool import Spool
from .status import StatusPublisher
from .store import ModelStore
from .switcher import ModelSwitcher
from .telemetry import TelemetryMeter
from .transport import FleetTransport
from .uplink import DetectionUplink

log = logging.getLogger("keywire.fleet")


@dataclass(frozen=True)
class FleetConfig:
    """Everything the fleet component needs; built from the agent's config (`from_agent_config`)."""

    fleet: str
    device_id: str
    state_dir: str
    mqtt: MqttSettings
    groups: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = ()
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"
    ha_max_event_age_s: float = DEFAULT_MAX_EVENT_AGE_S  # older detections reach the log, not HA
    telemetry_s: float = 60.0
    chunk_window: int = 4
    spool_window: int = 16
    max_model_bytes: int = 4 * 1024 * 1024
    confirm_after_s: float = 10.0
    spool_max_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_agent_config(cls, cfg: AgentConfig) -> "FleetConfig":
        m = cfg.mqtt
        if not cfg.state_dir:
            raise ConfigError("MQTT needs a state directory (--state-dir) for the event spool and models")
        for g in m.groups:
            check_name("group", g)
        settings = MqttSettings(url=m.url, client_id=f"keywire-{m.fleet}-{cfg.device_id}", username=m.username,
                                password=m.password, ca=m.ca, cert=m.cert, key=m.key, protocol=m.protocol,
                                keepalive_s=m.keepalive_s).validate()
        return cls(fleet=check_name("fleet name", m.fleet), device_id=check_name("device id", cfg.device_id),
                   state_dir=cfg.state_dir, mqtt=settings, groups=tuple(m.groups),
                   trusted_keys=tuple(m.trusted_keys), ha_discovery=m.ha_discovery,
                   ha_max_event_age_s=m.ha_max_event_age_s, telemetry_s=m.telemetry_s)


def prepare_agent_config(cfg: AgentConfig) -> AgentConfig:
    """Before the agent loads its model: judge how the last run of a pending pushed model
    ended (rolling back one that keeps failing, health.py) and run the store's active model if
    there is one, through the stable path `<state_dir>/models/active.tflite` (so a reload reads
    the current one)."""
    if not cfg.mqtt.url:
        return cfg
    if not cfg.state_dir:
        raise ConfigError("MQTT needs a state directory (--state-dir) for the event spool and models")
    store = ModelStore(Path(cfg.state_dir))
    st = store.state()
    runs = RunRecord(store.dir)
    if st.pending and st.active is not None:
        end, evidence = runs.previous_end(st.active.sha256)
        verdict = store.note_boot(end, evidence)
        if verdict.rolled_back:
            log.warning("rolled back to the previous model: %s", verdict.reason)
        elif verdict.reason:
            log.warning("the new model's last run ended early (%s); it stays on trial", verdict.reason)
    st = store.state()
    if st.pending and st.active is not None:
        runs.began(st.active.sha256)  # from here (loading the model included) a crash is this run's
    runs.catch_fatal_signals()
    if store.state().active is None:  # first start: the --model becomes the store's active model
        if not cfg.model:
            raise ConfigError("no model given (--model) and none installed in the state directory")
        try:
            data = Path(cfg.model).read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model {cfg.model}: {exc.strerror}") from None
        params = read_params(data)
        store.adopt(data, ModelInfo(str(params.get("name") or Path(cfg.model).stem), str(params.get("version", "")),
                                    sha256_hex(data), tuple(str(c) for c in params.get("classes", ()))))
    path = store.sync_active_link()
    if path is None:
        raise ModelError(f"no intact model in {store.dir}")
    return dataclasses.replace(cfg, model=str(path))


class FleetService:
    """AgentComponent connecting one agent to the fleet's broker; its `sink` is the uplink."""

    status_key = "mqtt"  # its `status()` feeds the systemd status line

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.device = DeviceTopics(config.fleet, config.device_id)
        self.fleet = FleetTopics(config.fleet)
        state = Path(config.state_dir)
        self.store = ModelStore(state)
        self.runs = RunRecord(self.store.dir)
        self.spool = Spool(state / "spool", max_bytes=config.spool_max_bytes)
        self.meter = TelemetryMeter(config.device_id)
        self.transport = FleetTransport(config.mqtt)
        self.status_publisher = StatusPublisher(self.device, config.groups, self.store, self.spool, self.meter,
                                                self.transport, config.ha_prefix if config.ha_discovery else None)
        self.switcher = ModelSwitcher(self.store, self.runs, self.status_publisher, self.transport,
                                      config.max_model_bytes, config.confirm_after_s)
        self.commands = CommandHandler(state, self.switcher, self.status_publisher, self.transport)
        self.receiver = PushReceiver(self.device, config.groups, self.store,
                                     trusted_keys(Path(p) for p in config.trusted_keys), self.switcher.profile,
                                     self.transport, self.switcher.activate, self.status_publisher.report,
                                     window=config.chunk_window)
        self.uplink = DetectionUplink(self.device, self.spool, self.transport, self.meter, config.spool_window,
                                      config.ha_max_event_age_s if config.ha_discovery else 0.0)
        self.sink = self.uplink
        self.agent: Optional[AgentContext] = None
        self._next_telemetry = 0.0
        self._closed = False

    # ------------------------------------------------------------ AgentComponent
    def start(self, agent: AgentContext) -> None:
        self.agent = agent
        self.status_publisher.agent = agent
        self.runs.catch_fatal_signals()
        self.switcher.start(agent)
        self.commands.start(agent)
        self.meter.start_at(agent.stats().inferences)
        self._next_telemetry = time.monotonic() + self.config.telemetry_s
        self.transport.start(self._dispatch, self._on_connected, self.uplink.acked, self.status_publisher.will())

    def tick(self, tick: Tick) -> None:
        """From the audio loop: level for telemetry, health of a new model, telemetry timer."""
        if tick.samples:
            self.meter.observe(tick.level_dbfs)
        self.switcher.tick(tick)
        now = time.monotonic()
        if now >= self._next_telemetry:
            self._next_telemetry = now + self.config.telemetry_s
            self.transport.post(self.status_publisher.publish_telemetry)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.transport.close(final=self.status_publisher.will)
        if self.agent is not None:
            self.switcher.stop(self.agent.failure)
        self.runs.release()
        self.spool.close()

    def status(self) -> dict:
        """For the systemd status line: connected / connecting / disconnected (+ spooled events)."""
        pending = len(self.spool)
        return {"state": self.transport.state + (f", {pending} events spooled" if pending else ""),
                "spooled": pending}

    # ------------------------------------------------------------ routing (worker thread)
    def _dispatch(self, topic: str, payload: bytes) -> None:
        if topic == self.device.command:
            self.commands.handle(payload)
        elif topic in self.receiver.desired_topics():
            self.receiver.handle_desired(topic, payload)
        elif topic.startswith(self.fleet.base + "/model/"):
            self.receiver.handle_chunk(topic, payload)

    def _on_connected(self) -> None:
        self.status_publisher.publish_status()
        self.transport.subscribe(self.device.command, 1)
        self.receiver.on_connect()
        self.status_publisher.publish_discovery()
        self.uplink.pump()
