"""The agent: a supervised audio task driving the spotter and fanning detections out.

    AudioSupervisor (open / read / reopen with backoff) -> KeywordSpotter -> FanOut(sinks)

Other resources (MQTT, the serial board link, LEDs, systemd notification) attach as
`AgentComponent`s (agent/component.py): they see the agent only through `AgentContext`, are
started with it, get a `tick` from the processing loop (what the watchdog needs to know) and
are closed on stop. Every sink is wired once, in `Agent.__init__`. `swap_model`,
`set_detection` and `request_reload` are thread-safe, for remote commands and SIGHUP.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from keywire.protocol.detection import DetectionOverrides, DetectionSettings
from keywire.protocol.errors import AudioError, ConfigError, KeywireError

from .component import AgentComponent, AudioState, AudioStatus, StatsSnapshot, StatusReporter, Tick
from .config import AgentConfig, build_config, load_config_file
from .events import Detection, EventSink, FanOut
from .model import KeywordModel
from .sources import AudioSource, open_source
from .spotter import KeywordSpotter

log = logging.getLogger("keywire.agent")

__all__ = ["Agent", "AgentComponent", "AudioState", "AudioSupervisor", "Tick"]


class AudioSupervisor:
    """Owns one audio source: opens it, reopens it with exponential backoff when it fails."""

    def __init__(self, factory: Callable[[], AudioSource], initial_backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0) -> None:
        self.factory = factory
        self.source: Optional[AudioSource] = None
        self.state = AudioState.STARTING
        self.failures = 0
        self.reopens = 0
        self._backoff = initial_backoff_s
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._next_attempt = 0.0

    def _open(self) -> bool:
        if time.monotonic() < self._next_attempt:
            time.sleep(min(0.05, self._next_attempt - time.monotonic()))
            return False
        src = self.factory()
        try:
            src.open()
        except AudioError as exc:
            if not getattr(src, "reopenable", True):
                raise  # a file that cannot be read will not get better
            self._fail(f"cannot open audio source: {exc}")
            return False
        if self.source is not None:
            self.reopens += 1
        self.source = src
        self.state = AudioState.STREAMING
        self._backoff = self._initial
        log.info("audio source %s open at %d Hz", src.name, src.sample_rate)
        return True

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.state = AudioState.RECONNECTING
        log.warning("%s; retrying in %.1f s", message, self._backoff)
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._max)

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        """Samples (possibly empty while reconnecting), or None when the stream has ended."""
        if self.state is AudioState.ENDED:
            return None
        if self.state is not AudioState.STREAMING and not self._open():
            return np.zeros(0, np.int16)
        assert self.source is not None
        try:
            x = self.source.read(max_samples)
        except AudioError as exc:
            self.source.close()
            self._fail(str(exc))
            return np.zeros(0, np.int16)
        if x is None:
            self.state = AudioState.ENDED
        return x

    @property
    def detection_source(self) -> str:
        """What local detections name as their source: "local", or the other device whose
        microphone this is (a board streaming its audio names itself `board:ID`)."""
        return str(getattr(self.source, "detection_source", "local"))

    @property
    def dropped_samples(self) -> int:
        return int(getattr(self.source, "dropped_samples", 0) or 0)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


class Agent:
    """The device daemon's engine and the `AgentContext` its components see.
    `run()` returns when the source ends or `stop()` is called."""

    def __init__(self, config: AgentConfig, sinks: Sequence[EventSink] = (),
                 components: Sequence[AgentComponent] = (),
                 cli_overrides: Optional[dict] = None,
                 source_factory: Optional[Callable[[int], AudioSource]] = None) -> None:
        self._config = config
        self.components = list(components)
        # Where a detection goes, in this order: each component that consumes detections (the
        # MQTT spool and uplink, LEDs, the board's red LED), then the sinks the CLI chose (stdout
        # JSON, log). Components come first so that a detection anyone has seen on stdout is
        # already on disk in the spool: a kill between two sinks loses nothing printed.
        # Local detections heard through another device's microphone carry that device as their
        # source (`_deliver`). Nothing else adds or replaces sinks.
        self._sinks = FanOut([*(c.sink for c in self.components if c.sink is not None), *sinks])
        self._cli_overrides = dict(cli_overrides or {})
        self._source_factory = source_factory
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._emit_lock = threading.Lock()
        self._ready_callbacks: list[Callable[[], None]] = []
        self._reload_callbacks: list[Callable[[bool], None]] = []  # ok=False: reload failed
        self.ready = False
        self._failure: Optional[BaseException] = None
        self._started_at = time.monotonic()
        self._model = self._load_model(config.model)
        # More models on the same audio keep their own detection parameters; the device's
        # overrides and fleet pushes concern the primary one.
        self._extra_models = tuple(self._load_model(p) for p in config.extra_models)
        start_detection, _ = config.detection.resolve(self._model.detection, len(self._model.classes))  # logs drops
        self.spotter = KeywordSpotter(self._model, start_detection, device_id=config.device_id,
                                      embeddings_per_call=config.embeddings_per_call)
        for extra in self._extra_models:
            self.spotter.add_model(extra)
        self.audio = AudioSupervisor(self._make_source)

    # ---------------------------------------------------------------- AgentContext: what components see
    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def model(self) -> KeywordModel:
        return self._model

    @property
    def models(self) -> tuple[KeywordModel, ...]:
        return (self._model, *self._extra_models)

    @property
    def started_at(self) -> float:
        return self._started_at

    @property
    def failure(self) -> Optional[BaseException]:
        return self._failure

    def stats(self) -> StatsSnapshot:
        s = self.spotter.stats
        return StatsSnapshot(s.samples, s.inferences, s.detections, s.audio_rms_dbfs, tuple(s.latencies_ms))

    def audio_status(self) -> AudioStatus:
        return AudioStatus(self._config.source, self.audio.state, self.audio.dropped_samples)

    def on_ready(self, callback: Callable[[], None]) -> None:
        self._ready_callbacks.append(callback)

    def on_reload(self, callback: Callable[[bool], None]) -> None:
        self._reload_callbacks.append(callback)

    def component_status(self) -> dict[str, dict]:
        """Status of components that report one (`status_key` + `status()`), e.g. the board link."""
        return {c.status_key: c.status() for c in self.components if isinstance(c, StatusReporter)}

    # ---------------------------------------------------------------- model and settings
    def _load_model(self, path: str) -> KeywordModel:
        model = KeywordModel.load(path)
        log.info("model %s v%s (%s), classes %s", model.name, model.version, model.sha256[:12],
                 ", ".join(model.classes))
        return model

    def _make_source(self) -> AudioSource:
        rate = self._model.frontend.sample_rate_hz
        if self._source_factory is not None:
            return self._source_factory(rate)
        return open_source(self._config.source, rate, realtime=self._config.realtime)

    def detection_for(self, model: KeywordModel) -> DetectionSettings:
        """The model's detection parameters with this device's overrides applied; an override
        that does not fit the model (a threshold list for another class count) is left out."""
        return self._config.detection.apply(model.detection, len(model.classes))

    def swap_model(self, model: KeywordModel) -> None:
        """Switch models between two inference steps; audio keeps flowing (thread-safe)."""
        if model.frontend.sample_rate_hz != self._model.frontend.sample_rate_hz:
            raise KeywireError(
                f"model {model.name} needs {model.frontend.sample_rate_hz} Hz audio, "
                f"the running source delivers {self._model.frontend.sample_rate_hz} Hz")
        self.spotter.swap_model(model, self.detection_for(model))
        self._model = model

    def set_detection(self, overrides: DetectionOverrides) -> DetectionSettings:
        """Apply per-device detection overrides on top of the current ones (thread-safe)."""
        new_overrides = self._config.detection.merged(overrides)
        problems = overrides.conflicts(len(self._model.classes))
        if problems:  # a new value that cannot apply is refused; an older one meant for another model is left out
            raise ConfigError(problems[0])
        settings = new_overrides.apply(self._model.detection, len(self._model.classes))
        self.spotter.set_detection(settings)
        self._config = dataclasses.replace(self._config, detection=new_overrides)
        return settings

    def request_reload(self) -> None:
        """Re-read the config file and the model at the next loop pass (SIGHUP)."""
        self._reload.set()

    def _do_reload(self) -> None:
        self._reload.clear()
        try:
            cfg = self._config
            values = load_config_file(Path(cfg.config_path)) if cfg.config_path else {}
            new = build_config(values, self._cli_overrides, cfg.config_path)
            model = self._model
            if new.model != cfg.model or Path(new.model).read_bytes() != self._model.data:
                model = self._load_model(new.model)
            self._config = new
            self.swap_model(model)
            log.info("reloaded configuration%s", f" from {new.config_path}" if new.config_path else "")
            ok = True
        except (KeywireError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            ok = False
        for cb in self._reload_callbacks:
            cb(ok)

    # ---------------------------------------------------------------- events
    def emit(self, detection: Detection) -> None:
        """Hand a detection to every sink (also used for detections relayed from a board)."""
        with self._emit_lock:
            self._sinks.emit(detection)

    def _deliver(self, detection: Detection) -> None:
        """A detection of the local pipeline: named after the microphone it was heard on."""
        source = self.audio.detection_source
        if detection.source == "local" and source != "local":
            detection = dataclasses.replace(detection, source=source)
        self.emit(detection)

    # ---------------------------------------------------------------- loop
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        for c in self.components:
            c.start(self)
        chunk = max(1, self._model.frontend.sample_rate_hz * self._config.chunk_ms // 1000)
        stats = self.spotter.stats
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._do_reload()
                x = self.audio.read(chunk)
                if x is None:
                    log.info("audio source ended")
                    for d in self.spotter.flush():
                        self._deliver(d)
                    break
                before = stats.inferences
                detections = self.spotter.feed(x) if len(x) else []
                for d in detections:
                    self._deliver(d)
                tick = Tick(len(x), stats.inferences - before, len(detections),
                            stats.audio_rms_dbfs if len(x) else -120.0)
                if not self.ready and tick.inferences:
                    self.ready = True
                    for cb in self._ready_callbacks:
                        cb()
                for c in self.components:
                    c.tick(tick)
        except BaseException as exc:
            self._failure = exc  # components learn, on close, that the loop failed
            raise
        finally:
            self.close()
        return 0

    def close(self) -> None:
        self.audio.close()
        for c in reversed(self.components):
            try:
                c.close()
            except Exception:
                log.exception("closing %s failed", type(c).__name__)
        self._sinks.close()
        self.spotter.close()
