"""The agent's fleet component: MQTT link, event spool, status, telemetry, commands, model push.

`FleetService` plugs into the agent runtime twice: as an `AgentComponent` (started and closed
with the agent, ticked by the audio loop) and as an `EventSink` (every detection goes to the
on-disk spool, then to the broker with QoS 1, in order). All MQTT work runs on one worker
thread fed by a queue, so paho's network thread and the audio loop never block on it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import AgentConfig, DetectionOverrides
from ..errors import ConfigError, KeywireError, ModelError
from ..events import Detection
from ..model import KeywordModel
from .atomic import write_atomic
from .errors import FleetError, MessageError, ModelRejected
from .hass import discovery_messages
from .link import MqttLink, MqttSettings
from ..params import read_params
from .manifest import Manifest, sha256_hex
from .messages import ACTIVE, REJECTED, ROLLED_BACK, SCHEMA_VERSION, Command, ModelInfo, Progress, Reply, Status, dumps
from .receiver import PushReceiver
from .selftest import DeviceProfile, self_test
from .signing import trusted_keys
from .spool import Spool
from .store import ModelStore
from .telemetry import TelemetryMeter
from .topics import DeviceTopics, FleetTopics, check_name

log = logging.getLogger("keywire.fleet")


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("keywire")
    except Exception:  # pragma: no cover - not installed
        return "0"


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
                   trusted_keys=tuple(m.trusted_keys), ha_discovery=m.ha_discovery, telemetry_s=m.telemetry_s)


def prepare_agent_config(cfg: AgentConfig) -> AgentConfig:
    """Before the agent loads its model: count this start against a pending pushed model
    (rolling back one that keeps failing) and run the store's active model if there is one,
    through the stable path `<state_dir>/models/active.tflite` (so a reload reads the current one)."""
    if not cfg.mqtt.url:
        return cfg
    if not cfg.state_dir:
        raise ConfigError("MQTT needs a state directory (--state-dir) for the event spool and models")
    store = ModelStore(Path(cfg.state_dir))
    if store.note_boot():
        log.warning("the pushed model kept failing after activation; rolled back to the previous model")
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


@dataclass
class _HealthWatch:
    sha256: str
    since: float
    inferences: int
    samples: int


class FleetService:
    """AgentComponent + EventSink connecting one agent to the fleet's broker."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.device = DeviceTopics(config.fleet, config.device_id)
        self.fleet = FleetTopics(config.fleet)
        state = Path(config.state_dir)
        self.store = ModelStore(state)
        self.spool = Spool(state / "spool", max_bytes=config.spool_max_bytes)
        self.trusted = trusted_keys(Path(p) for p in config.trusted_keys)
        self.meter = TelemetryMeter(config.device_id)
        self.agent: Any = None
        self.link: Optional[MqttLink] = None
        self.receiver: Optional[PushReceiver] = None
        self.version = software_version()
        self.last_push: dict[str, Any] = {}
        self.reason = ""
        self._jobs: "queue.Queue[Optional[tuple[Callable[..., None], tuple]]]" = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._inflight: dict[int, int] = {}
        self._sent_upto = 0
        self._done: set[int] = set()
        self._watch: Optional[_HealthWatch] = None
        self._next_telemetry = 0.0
        self._closed = False
        self._overrides_path = state / "fleet-detection.json"
        self._will_sha = ""  # the model the broker's copy of our last will names

    # ------------------------------------------------------------ component lifecycle
    def start(self, agent: Any) -> None:
        self.agent = agent
        agent.sinks.add(self)
        model: KeywordModel = agent.model
        self.store.adopt(model.data, self._info(model))
        st = self.store.state()
        if st.pending and st.active and st.active.sha256 == model.sha256:
            self._watch = _HealthWatch(model.sha256, time.monotonic(), agent.spotter.stats.inferences,
                                       agent.spotter.stats.samples)
        self._restore_overrides()
        self.receiver = PushReceiver(self.device, self.config.groups, self.store, self.trusted, self._profile,
                                     self, self._activate, self._report, window=self.config.chunk_window)
        self.link = MqttLink(self.config.mqtt, on_message=self._on_message,
                             on_connect=lambda: self._post(self._on_connected),
                             on_published=lambda mid: self._post(self._on_acked, mid),
                             will=self._will(), max_inflight=20)
        self._worker = threading.Thread(target=self._run_worker, name="keywire-fleet", daemon=True)
        self._worker.start()
        self.meter.start_at(agent.spotter.stats.inferences)
        self._next_telemetry = time.monotonic() + self.config.telemetry_s
        self.link.start()

    def tick(self, agent: Any, tick: Any) -> None:
        """From the audio loop: level for telemetry, health of a new model, telemetry timer."""
        stats = agent.spotter.stats
        if tick.samples:
            self.meter.observe(stats.audio_rms_dbfs)
        now = time.monotonic()
        w = self._watch
        if w is not None and now - w.since >= self.config.confirm_after_s:
            rate = agent.model.frontend.sample_rate_hz
            if stats.inferences > w.inferences:
                self._watch = None
                self._post(self._confirm, w.sha256)
            elif stats.samples - w.samples >= rate * self.config.confirm_after_s / 2:
                self._watch = None
                self._post(self._auto_rollback, w.sha256, "no inference ran after activation")
        if now >= self._next_telemetry:
            self._next_telemetry = now + self.config.telemetry_s
            self._post(self._publish_telemetry)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
        if self.link is not None:
            self.link.close(final=self._will())
        self.spool.close()

    @property
    def mqtt_state(self) -> str:
        """For the systemd status line: connected / connecting / disconnected (+ spooled events)."""
        if self.link is None:
            return "not started"
        pending = len(self.spool)
        return self.link.state.value + (f", {pending} events spooled" if pending else "")

    # ------------------------------------------------------------ EventSink
    def emit(self, detection: Detection) -> None:
        """Spool (fsync) then publish QoS 1: nothing is lost while the broker is away."""
        if not detection.device_id:
            detection = dataclasses.replace(detection, device_id=self.config.device_id)
        d = detection.to_dict()
        d.update(v=SCHEMA_VERSION, type="detection")
        if self.spool.append(self.device.event, dumps(d)) is None:
            log.error("event spool full: detection %s dropped", detection.event_id)
        self.meter.count_detection(detection.keyword)
        self._post(self._pump)

    # ------------------------------------------------------------ transport for the receiver
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> object:
        assert self.link is not None
        return self.link.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        assert self.link is not None
        self.link.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        assert self.link is not None
        self.link.unsubscribe(topic)

    # ------------------------------------------------------------ worker
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
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

    def _on_message(self, topic: str, payload: bytes) -> None:
        self._post(self._dispatch, topic, payload)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        assert self.receiver is not None
        if topic == self.device.command:
            self._handle_command(payload)
        elif topic in self.receiver.desired_topics():
            self.receiver.handle_desired(topic, payload)
        elif topic.startswith(self.fleet.base + "/model/"):
            self.receiver.handle_chunk(topic, payload)

    def _on_connected(self) -> None:
        assert self.link is not None and self.receiver is not None
        self._publish_status()
        self.link.subscribe(self.device.command, 1)
        self.receiver.on_connect()
        if self.config.ha_discovery:
            self._publish_discovery()
        self._pump()

    # ------------------------------------------------------------ spool delivery (in order, QoS 1)
    def _pump(self) -> None:
        if self.link is None or not self.link.connected:
            return
        for rec in self.spool.pending():
            if rec.seq <= self._sent_upto:
                continue
            if len(self._inflight) >= self.config.spool_window:
                break
            info = self.link.publish(rec.topic, rec.payload, qos=1)
            self._inflight[info.mid] = rec.seq
            self._sent_upto = rec.seq

    def _on_acked(self, mid: int) -> None:
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
        self._pump()

    # ------------------------------------------------------------ status, telemetry, discovery
    def _info(self, model: KeywordModel) -> ModelInfo:
        return ModelInfo(model.name, model.version, model.sha256, tuple(model.classes))

    def _status(self, online: bool = True) -> Status:
        agent = self.agent
        model = self._info(agent.model) if agent is not None else None
        detection = agent.detection_for(agent.model).to_params() if agent is not None else {}
        return Status(device_id=self.config.device_id, online=online, time=time.time(), model=model,
                      previous_model=self.store.state().previous, detection=detection,
                      uptime_s=round(time.monotonic() - agent.started_at, 3) if agent is not None else 0.0,
                      software_version=self.version, groups=self.config.groups, last_push=dict(self.last_push),
                      reason=self.reason, board=agent.component_status().get("board") if agent is not None else None)

    def _will(self) -> tuple[str, bytes, bool]:
        """The offline status the broker publishes (retained) if this device vanishes."""
        self._will_sha = self.agent.model.sha256 if self.agent is not None else ""
        return self.device.status, self._status(online=False).to_json(), True

    def _publish_status(self) -> None:
        if self.link is None:
            return
        self.link.publish(self.device.status, self._status().to_json(), qos=1, retain=True)
        if self.agent is not None and self.agent.model.sha256 != self._will_sha:
            # The will still names the model from connect time; a device that dies now must
            # not be shown offline with a model it no longer runs.
            self.link.renew_will(self._will())

    def _publish_telemetry(self) -> None:
        if self.link is None or self.agent is None:
            return
        stats = self.agent.spotter.stats
        src = getattr(self.agent.audio, "source", None)
        t = self.meter.report(stats.inferences, list(stats.latencies_ms), getattr(src, "dropped_samples", 0) or 0,
                              len(self.spool))
        self.link.publish(self.device.telemetry, t.to_json(), qos=0, retain=True)  # last figures for `fleet status`

    def _publish_discovery(self) -> None:
        assert self.link is not None
        for topic, payload in discovery_messages(self.device, self.agent.model.classes, self.version,
                                                 self.config.ha_prefix):
            self.link.publish(topic, payload, qos=1, retain=True)

    def _report(self, p: Progress) -> None:
        """A push step: on the push topic; final outcomes also in the retained status."""
        if self.link is not None:
            self.link.publish(self.device.progress, p.to_json(), qos=1)
        if p.state in (ACTIVE, REJECTED, ROLLED_BACK):
            self.last_push = {"sha256": p.sha256, "version": p.version, "state": p.state, "reason": p.reason,
                              "time": p.time}
            self.reason = p.reason if p.state != ACTIVE else ""
            self._publish_status()

    # ------------------------------------------------------------ model switching
    def _profile(self) -> DeviceProfile:
        return DeviceProfile(sample_rates=(self.agent.model.frontend.sample_rate_hz,),
                             max_model_bytes=self.config.max_model_bytes)

    def _activate(self, data: bytes, m: Manifest) -> None:
        """Self-test, install (pending), switch between two inference steps."""
        model = self_test(data, m, self._profile())
        self.store.install(data, self._info(model), m.issued_at)
        try:
            self.agent.swap_model(model)
        except KeywireError as exc:
            self.store.rollback()
            raise ModelRejected(f"cannot switch to the model: {exc}") from None
        stats = self.agent.spotter.stats
        self._watch = _HealthWatch(model.sha256, time.monotonic(), stats.inferences, stats.samples)
        log.info("model %s v%s active (previous kept as last-known-good)", model.name, model.version)
        if self.config.ha_discovery:
            self._publish_discovery()

    def _confirm(self, sha256: str) -> None:
        st = self.store.state()
        if st.active and st.active.sha256 == sha256:
            self.store.confirm()
            log.info("model %s confirmed healthy", sha256[:12])

    def _auto_rollback(self, sha256: str, reason: str) -> None:
        st = self.store.state()
        if st.active and st.active.sha256 == sha256 and st.pending:
            self._rollback(f"rolled back automatically: {reason}")

    def _rollback(self, reason: str) -> ModelInfo:
        st = self.store.state()
        bad = st.active
        prev = self.store.rollback()
        if prev is None:
            raise FleetError("no previous model to roll back to")
        model = KeywordModel.load(self.store.path_of(prev.sha256))
        self.agent.swap_model(model)
        self._watch = None
        log.warning("model %s -> %s: %s", bad.sha256[:12] if bad else "?", prev.sha256[:12], reason)
        if bad is not None:
            self._report(Progress(self.config.device_id, bad.sha256, ROLLED_BACK, reason=reason, version=bad.version,
                                  time=time.time()))
        return prev

    # ------------------------------------------------------------ commands
    def _handle_command(self, payload: bytes) -> None:
        try:
            cmd = Command.from_json(payload)
        except MessageError as exc:
            log.warning("rejected command: %s", exc)
            self.reason = f"rejected command: {exc}"
            self._reply(Reply(self.config.device_id, "?", False, reason=str(exc), time=time.time()))
            self._publish_status()
            return
        try:
            if cmd.action == "set_detection":
                self._set_detection(cmd.detection)
            elif cmd.action == "rollback":
                self._rollback("rolled back by command")
            elif cmd.action == "reload":
                self._reload()
            ok, reason = True, ""
        except KeywireError as exc:
            ok, reason = False, str(exc)
            log.warning("command %s failed: %s", cmd.action, reason)
            self.reason = f"command {cmd.action} failed: {reason}"
        self._reply(Reply(self.config.device_id, cmd.action, ok, id=cmd.id, reason=reason, time=time.time()))
        self._publish_status()

    def _reply(self, r: Reply) -> None:
        if self.link is not None:
            self.link.publish(self.device.reply, r.to_json(), qos=1)

    def _set_detection(self, values: dict[str, Any], persist: bool = True) -> None:
        ov = DetectionOverrides(
            threshold=values.get("detection_threshold"),
            threshold_list=tuple(values["detection_threshold_list"]) if values.get("detection_threshold_list") else None,
            window_ms=values.get("average_window_duration_ms"), suppression_ms=values.get("suppression_ms"),
            minimum_count=values.get("minimum_count"))
        self.agent.set_detection(ov)
        if persist:
            saved = self._saved_overrides()
            saved.update(values)
            write_atomic(self._overrides_path, json.dumps(saved, sort_keys=True).encode())

    def _saved_overrides(self) -> dict[str, Any]:
        try:
            d = json.loads(self._overrides_path.read_bytes())
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}

    def _restore_overrides(self) -> None:
        saved = self._saved_overrides()
        if saved:
            try:
                self._set_detection(saved, persist=False)
            except KeywireError as exc:
                log.warning("ignoring saved detection settings: %s", exc)

    def _reload(self) -> None:
        """Re-read the active model from disk (verified) and switch to it."""
        path = self.store.active_path()
        if path is None:
            raise FleetError("no installed model to reload")
        self.agent.swap_model(KeywordModel.load(path))
