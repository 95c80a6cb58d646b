"""The agent: a supervised audio task driving the spotter and fanning detections out.

    AudioSupervisor (open / read / reopen with backoff) -> KeywordSpotter -> FanOut(sinks)

Other resources (MQTT, the serial board link, systemd notification) attach as
`AgentComponent`s: they are started with the agent, may add sinks, get a `tick` from the
processing loop (what the watchdog needs to know) and are closed on stop. `swap_model`,
`set_detection` and `request_reload` are thread-safe, for remote commands and SIGHUP.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np

from .config import AgentConfig, DetectionOverrides, build_config, load_config_file
from .errors import AudioError, KeywireError
from .events import Detection, EventSink, FanOut
from .model import KeywordModel
from .settings import DetectionSettings
from .sources import AudioSource, open_source
from .spotter import KeywordSpotter

log = logging.getLogger("keywire.agent")


class AudioState(str, enum.Enum):
    STARTING = "starting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


@dataclass(frozen=True)
class Tick:
    """What one pass of the processing loop did (the watchdog's evidence of health)."""

    samples: int
    inferences: int
    detections: int


class AgentComponent(Protocol):
    def start(self, agent: "Agent") -> None: ...

    def tick(self, agent: "Agent", tick: Tick) -> None: ...

    def close(self) -> None: ...


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

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


class Agent:
    """The device daemon's engine. `run()` returns when the source ends or `stop()` is called."""

    def __init__(self, config: AgentConfig, sinks: Sequence[EventSink] = (),
                 components: Sequence[AgentComponent] = (),
                 cli_overrides: Optional[dict] = None,
                 source_factory: Optional[Callable[[int], AudioSource]] = None) -> None:
        self.config = config
        self.sinks = FanOut(sinks)
        self.components = list(components)
        self._cli_overrides = dict(cli_overrides or {})
        self._source_factory = source_factory
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._emit_lock = threading.Lock()
        self.ready_callbacks: list[Callable[["Agent"], None]] = []
        # Called after each SIGHUP reload with ok=False when it failed (systemd READY=1 again).
        self.reload_callbacks: list[Callable[["Agent", bool], None]] = []
        self.ready = False
        self.started_at = time.monotonic()
        self.model = self._load_model(config.model)
        self.spotter = KeywordSpotter(self.model, config.detection.apply(self.model.detection),
                                      device_id=config.device_id)
        self.audio = AudioSupervisor(self._make_source)

    # ---------------------------------------------------------------- model and settings
    def _load_model(self, path: str) -> KeywordModel:
        model = KeywordModel.load(path)
        log.info("model %s v%s (%s), classes %s", model.name, model.version, model.sha256[:12],
                 ", ".join(model.classes))
        return model

    def _make_source(self) -> AudioSource:
        rate = self.model.frontend.sample_rate_hz
        if self._source_factory is not None:
            return self._source_factory(rate)
        return open_source(self.config.source, rate, realtime=self.config.realtime)

    def detection_for(self, model: KeywordModel) -> DetectionSettings:
        """The model's detection parameters with this device's overrides applied."""
        return self.config.detection.apply(model.detection)

    def swap_model(self, model: KeywordModel) -> None:
        """Switch models between two inference steps; audio keeps flowing (thread-safe)."""
        if model.frontend.sample_rate_hz != self.model.frontend.sample_rate_hz:
            raise KeywireError(
                f"model {model.name} needs {model.frontend.sample_rate_hz} Hz audio, "
                f"the running source delivers {self.model.frontend.sample_rate_hz} Hz")
        self.spotter.swap_model(model, self.detection_for(model))
        self.model = model

    def set_detection(self, overrides: DetectionOverrides) -> DetectionSettings:
        """Apply per-device detection overrides on top of the current ones (thread-safe)."""
        new_overrides = self.config.detection.merged(overrides)
        settings = new_overrides.apply(self.model.detection)
        self.spotter.set_detection(settings)
        self.config = dataclasses.replace(self.config, detection=new_overrides)
        return settings

    def request_reload(self) -> None:
        """Re-read the config file and the model at the next loop pass (SIGHUP)."""
        self._reload.set()

    def _do_reload(self) -> None:
        self._reload.clear()
        try:
            values = load_config_file(Path(self.config.config_path)) if self.config.config_path else {}
            new = build_config(values, self._cli_overrides, self.config.config_path)
            model = self.model
            if new.model != self.config.model or Path(new.model).read_bytes() != self.model.data:
                model = self._load_model(new.model)
            self.config = new
            self.swap_model(model)
            log.info("reloaded configuration%s", f" from {new.config_path}" if new.config_path else "")
            ok = True
        except (KeywireError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            ok = False
        for cb in self.reload_callbacks:
            cb(self, ok)

    def component_status(self) -> dict[str, dict]:
        """Status of components that report one (`status_key` + `status()`), e.g. the board link."""
        return {c.status_key: c.status() for c in self.components  # type: ignore[attr-defined]
                if getattr(c, "status_key", None) and callable(getattr(c, "status", None))}

    # ---------------------------------------------------------------- events
    def emit(self, detection: Detection) -> None:
        """Hand a detection to every sink (also used for detections relayed from a board)."""
        with self._emit_lock:
            self.sinks.emit(detection)

    # ---------------------------------------------------------------- loop
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        for c in self.components:
            c.start(self)
        chunk = max(1, self.model.frontend.sample_rate_hz * self.config.chunk_ms // 1000)
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._do_reload()
                x = self.audio.read(chunk)
                if x is None:
                    log.info("audio source ended")
                    break
                before = self.spotter.stats.inferences
                detections = self.spotter.feed(x) if len(x) else []
                for d in detections:
                    self.emit(d)
                tick = Tick(len(x), self.spotter.stats.inferences - before, len(detections))
                if not self.ready and tick.inferences:
                    self.ready = True
                    for cb in self.ready_callbacks:
                        cb(self)
                for c in self.components:
                    c.tick(self, tick)
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
        self.sinks.close()
        self.spotter.close()
