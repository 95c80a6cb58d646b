"""The seam between the agent and its components (MQTT fleet, serial board, LEDs, systemd).

A component sees the agent only through `AgentContext`: the running model(s), a snapshot of
the audio loop's counters, the audio state, and a few actions (swap the model, change the
detection settings, emit a detection, hear about readiness and reloads). It never touches the
agent's spotter, audio source or sink list. What a component consumes of the detections it
names as its `sink`; the agent wires every sink in one place (`Agent.__init__`).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:  # only types: components must not import the runtime
    from keywire.protocol.detection import DetectionOverrides, DetectionSettings

    from .config import AgentConfig
    from .events import Detection, EventSink
    from .model import KeywordModel


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
    level_dbfs: float = -120.0   # audio level of this pass (-120 when no audio came)


@dataclass(frozen=True)
class StatsSnapshot:
    """The audio loop's counters since start, copied (safe to keep and read on any thread)."""

    samples: int
    inferences: int
    detections: int
    audio_rms_dbfs: float
    latencies_ms: tuple[float, ...]


@dataclass(frozen=True)
class AudioStatus:
    """The audio input as a component may report it."""

    source: str              # the configured source spec (mic:..., file:..., board:...)
    state: AudioState
    dropped_samples: int     # audio the source lost (e.g. serial frames from a board)


class AgentContext(Protocol):
    """What a component may see and do. Implemented by `runtime.Agent`; thread-safe."""

    @property
    def config(self) -> "AgentConfig": ...

    @property
    def models(self) -> tuple["KeywordModel", ...]:
        """The running models; the first is the primary one (pushes and reloads replace it)."""
        ...

    @property
    def model(self) -> "KeywordModel":
        """The primary model (`models[0]`)."""
        ...

    @property
    def started_at(self) -> float: ...

    @property
    def failure(self) -> Optional[BaseException]:
        """What ended the processing loop abnormally (None while running or after a clean stop)."""
        ...

    def stats(self) -> StatsSnapshot: ...

    def audio_status(self) -> AudioStatus: ...

    def detection_for(self, model: "KeywordModel") -> "DetectionSettings":
        """The detection settings `model` would run with on this device (its own + overrides)."""
        ...

    def swap_model(self, model: "KeywordModel") -> None:
        """Replace the primary model between two inference steps (`KeywireError` if it cannot run)."""
        ...

    def set_detection(self, overrides: "DetectionOverrides") -> "DetectionSettings": ...

    def emit(self, detection: "Detection") -> None:
        """Hand a detection (e.g. relayed from a board) to every sink."""
        ...

    def component_status(self) -> dict[str, dict]:
        """Status of the components that report one, by their `status_key`."""
        ...

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback` once audio flows through the model (first inference)."""
        ...

    def on_reload(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(ok)` after each reload (SIGHUP) of the configuration."""
        ...


class AgentComponent(Protocol):
    """A resource started and closed with the agent and ticked by its processing loop."""

    # The detections this component consumes (None: none). Read once, when the agent is built.
    sink: Optional["EventSink"]

    def start(self, agent: AgentContext) -> None: ...

    def tick(self, tick: Tick) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class StatusReporter(Protocol):
    """A component whose state goes into the device status (MQTT) and the systemd status line."""

    status_key: str

    def status(self) -> dict: ...
