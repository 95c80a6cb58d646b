"""A board as part of the agent (`keywire-agent run --board serial:/dev/ttyACM0`).

Detect mode: the board runs the model; its detections become `Detection` events with the
board's identity and go to the agent's sinks (stdout, log, LEDs, MQTT) like local ones,
through `AgentContext.emit`. When the
agent has a model (--model, or one pushed over MQTT) the board is given the same model over
serial, once per model; if the board refuses it, it keeps its own and the error is logged. Without
a local model (`run_board_only`) the board's LED reports are mirrored on the agent's LEDs. Stream mode: the board is the agent's
audio source (`BoardAudioSource`) and the agent drives the board's LEDs (green = audio
activity, red = detection): the component is then a sink of the agent, and local detections
name the board as their source (`BoardAudioSource.detection_source`).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from keywire.protocol.detection import DetectionSettings
from keywire.protocol.errors import AudioError, ConfigError, KeywireError

from ..events import Detection, EventSink, FanOut
from ..sources import SourceState
from . import messages as m
from .link import BoardLink, BoardSpec, LinkSettings

if TYPE_CHECKING:
    from ..component import AgentContext, Tick

log = logging.getLogger("keywire.board")

RED_HOLD_S = 1.0


class BoardAudioSource:
    """The board's microphone as an agent `AudioSource` (stream mode). Never blocks for long:
    while the link is down `read` returns empty arrays and the link reconnects by itself."""

    def __init__(self, link: BoardLink, sample_rate: int) -> None:
        self.link = link
        self.name = f"board:{link.spec.port}"
        self.sample_rate = sample_rate
        self.state = SourceState.CLOSED
        self.dropped_samples = 0

    def open(self) -> None:
        h = self.link.hello
        if h is not None and h.sample_rate != self.sample_rate:
            raise AudioError(f"board streams {h.sample_rate} Hz audio, the model needs {self.sample_rate} Hz")
        self.state = SourceState.OPEN

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        x = self.link.read_audio(max_samples, timeout_s=0.1)
        self.dropped_samples = self.link.stats.dropped_frames * m.AUDIO_FRAME_SAMPLES
        return x

    @property
    def detection_source(self) -> str:
        """Detections heard through this microphone carry the board's identity, like relayed ones."""
        return f"board:{self.link.board_id}"

    def close(self) -> None:
        self.state = SourceState.CLOSED


class BoardComponent:
    """AgentComponent owning the board link. Build with `from_config`."""

    status_key = "board"  # its `status()` goes into the device's MQTT status

    def __init__(self, spec: BoardSpec, mode: m.Mode, device_id: str,
                 detection: Optional[DetectionSettings] = None, activity_dbfs: float = -50.0) -> None:
        params = m.SetParams.from_settings(detection) if detection is not None else None
        self.mode = mode
        self.device_id = device_id
        self.activity_dbfs = activity_dbfs
        self.link = BoardLink(spec, LinkSettings(mode=mode, params=params), on_detection=self._on_detection,
                              on_event=self._on_event)
        self._relay: Callable[[Detection], None] = lambda d: None  # where the board's detections go
        self._mirror: list[Any] = []
        self._red_until = 0.0
        self._pushed: dict[int, str] = {}   # crc32 -> sha256 of models pushed by this agent
        self._started = False
        self._sync_tried: set[int] = set()  # crc32 of agent models already offered to the board
        self._sync: Optional[threading.Thread] = None
        self.last_scores: Optional[m.Scores] = None
        self.sync_error = ""
        self._agent: Optional[AgentContext] = None

    @classmethod
    def from_config(cls, board, device_id: str, detection: Optional[DetectionSettings] = None,  # noqa: ANN001
                    activity_dbfs: float = -50.0) -> "BoardComponent":
        """From `AgentConfig.board` (port `serial:DEV[@BAUD]`, mode `detect|stream`)."""
        mode = m.Mode.STREAM if board.mode == "stream" else m.Mode.DETECT
        return cls(BoardSpec.parse(board.port), mode, device_id, detection, activity_dbfs)

    # ---------------------------------------------------------------- AgentComponent
    @property
    def sink(self) -> Optional["BoardComponent"]:
        """Stream mode: the agent's detections light the board's red LED."""
        return self if self.mode == m.Mode.STREAM else None

    def start(self, agent: Optional[AgentContext] = None) -> None:
        """With the agent (None: board-only runs, see `run_board_only`)."""
        if agent is not None:
            self._agent = agent
            self._relay = agent.emit  # the agent serialises sinks across threads
            # With a local pipeline the agent's LEDs show local audio (red also blinks for board
            # detections, which reach the LED sink); board-only runs mirror the board's LEDs.
        if not self._started:
            self._started = True
            self.link.start()

    def tick(self, tick: Tick) -> None:
        if self.mode == m.Mode.DETECT:
            if self._agent is not None:
                self._sync_model(self._agent.model.data)
            return
        self.link.set_leds(time.monotonic() < self._red_until, tick.level_dbfs >= self.activity_dbfs)

    def close(self) -> None:
        self.link.close()

    # ---------------------------------------------------------------- sink (stream mode)
    def emit(self, detection: Detection) -> None:
        self._red_until = time.monotonic() + RED_HOLD_S
        self.link.set_leds(True, self.link.leds[1])

    # ---------------------------------------------------------------- board events
    def _on_detection(self, d: m.DetectionMsg, hello: m.Hello) -> None:
        det = Detection(keyword=d.label, score=d.score, time_ms=d.time_ms, class_index=d.class_index,
                        model_name=hello.model_name, model_sha256=self._pushed.get(hello.model_crc32, ""),
                        device_id=self.device_id, source=f"board:{hello.board_id}")
        self._relay(det)

    def _sync_model(self, data: bytes) -> None:
        """Detect mode: the board runs the agent's model. When the agent's model (from --model,
        or pushed over MQTT) differs from the board's, send it over serial, once per model."""
        h = self.link.hello
        if h is None or (self._sync is not None and self._sync.is_alive()):
            return
        crc = zlib.crc32(data)
        if crc == h.model_crc32 or crc in self._sync_tried or self.link.state.value != "connected":
            return
        self._sync_tried.add(crc)

        def push() -> None:
            try:
                self._pushed[crc] = hashlib.sha256(data).hexdigest()
                hello = self.link.push_model(data)
                self.sync_error = ""
                log.info("board %s now runs model %r", hello.board_id, hello.model_name)
            except KeywireError as exc:
                self.sync_error = str(exc)
                log.error("board %s keeps model %r: %s", h.board_id, h.model_name, exc)

        self._sync = threading.Thread(target=push, name="board-model-sync", daemon=True)
        self._sync.start()

    def _on_event(self, msg: m.Message) -> None:
        if isinstance(msg, m.Scores):
            self.last_scores = msg
        if isinstance(msg, m.Leds) and self.mode == m.Mode.DETECT:
            for responder in self._mirror:
                for led, on in ((getattr(responder, "red", None), msg.red), (getattr(responder, "green", None), msg.green)):
                    if led is not None:
                        led.set(on)

    # ---------------------------------------------------------------- operations
    def source_factory(self, sample_rate: int) -> BoardAudioSource:
        return BoardAudioSource(self.link, sample_rate)

    def push_model(self, path: Path) -> m.Hello:
        """Send a .tflite to the board and activate it there (`BoardError` when refused)."""
        data = Path(path).read_bytes()
        self._pushed[zlib.crc32(data)] = hashlib.sha256(data).hexdigest()
        return self.link.push_model(data)

    def status(self) -> dict[str, Any]:
        """Board state for logs and telemetry."""
        h = self.link.hello
        s = self.link.stats
        return {"port": self.link.spec.port, "state": self.link.state.value, "mode": self.mode.name.lower(),
                "board_id": h.board_id if h else "", "firmware": h.firmware if h else "",
                "model": h.model_name if h else "", "detections": s.detections, "duplicates": s.duplicates,
                "bad_crc": s.bad_crc, "reconnects": s.reconnects, "board_resets": s.board_resets,
                "dropped_frames": s.dropped_frames, "board_errors": s.board_errors,
                "leds": list(self.link.board_leds), "model_sync_error": self.sync_error,
                "scores": list(self.last_scores.scores) if self.last_scores else None}


def run_board_only(component: BoardComponent, sinks: Sequence[EventSink], stop: threading.Event,
                   others: Sequence[Any] = (), status_every_s: float = 60.0) -> int:
    """Detect mode without a local model: relay the board's detections until `stop` is set.

    LED responders among `others` mirror the board's LEDs. A systemd notifier among them (the
    service component's `notifier`) gets READY=1 once the board is connected, STATUS= lines, and
    WATCHDOG=1 while frames keep arriving from the board (the link pings it every 250 ms).
    MQTT needs the agent's loop and is refused by `run_board_only_cli`."""
    relay = FanOut(sinks)
    component._relay = relay.emit
    component._mirror.extend(c for c in others if hasattr(c, "red") and hasattr(c, "green"))
    notifiers = [c.notifier for c in others if hasattr(getattr(c, "notifier", None), "heartbeat")]
    component.start(None)
    last = last_status = time.monotonic()
    ready = False
    try:
        while not stop.wait(0.2):
            now = time.monotonic()
            link = component.link
            text = (f"board {link.board_id} {link.state.value}, {link.stats.detections} detections, "
                    f"{link.stats.reconnects} reconnects")
            for n in notifiers:
                if not ready and link.state.value == "connected":
                    n.ready(text)
                n.heartbeat(link.stats.frames_rx, link.stats.frames_rx)
                if now - last_status >= 1.0:
                    n.status(text)
            ready = ready or link.state.value == "connected"
            last_status = now if now - last_status >= 1.0 else last_status
            if now - last >= status_every_s:
                last = now
                log.info("board status %s", component.status())
    finally:
        for n in notifiers:
            n.stopping()
        component.close()
        relay.close()
    return 0


def board_for_agent(config) -> BoardComponent:  # noqa: ANN001 - AgentConfig
    """The board component for `keywire-agent run --board ...`. Detection overrides given to
    the agent (threshold, window, ...) are sent to the board on top of MLTK's defaults;
    without overrides the board uses its model's own parameters."""
    overrides = config.detection
    detection = None
    if any(v is not None for v in vars(overrides).values()):
        detection = overrides.apply(DetectionSettings())
    return BoardComponent.from_config(config.board, config.device_id, detection, config.led.activity_dbfs)


def run_board_only_cli(component: BoardComponent, sinks: Sequence[EventSink], others: Sequence[Any] = ()) -> int:
    """`run_board_only` with SIGTERM/SIGINT stopping it (the CLI's detect mode without a model)."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if any(type(c).__name__ == "FleetService" for c in others):
        raise ConfigError("relaying board detections to MQTT runs through the agent's loop: give a model "
                          "(--model, e.g. the board's) and a source (--source silence will do)")
    return run_board_only(component, sinks, stop, others)
