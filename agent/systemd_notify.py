"""The agent as a systemd service: sd_notify readiness, watchdog, status, and journal fields.

systemd learns the agent's state through the notify socket: `READY=1` once audio flows
and the model has run once, `WATCHDOG=1` only while the processing loop makes progress
(so a stalled audio source or a hung interpreter lets `WatchdogSec=` fire and restart us),
`STATUS=` for `systemctl status`, `RELOADING=1`/`STOPPING=1` around SIGHUP/SIGTERM.
Detections go to the journal with structured fields (KEYWORD, SCORE, MODEL, EVENT_ID) so
`journalctl -u keywire-agent KEYWORD=yes` finds them.

Without systemd (no NOTIFY_SOCKET, no journal stream) every method here is a no-op.
The CLI reads the process environment once into a `ServiceEnvironment`; nothing in this
module reads `os.environ` on its own.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from .component import AgentContext, Tick
    from .events import Detection

log = logging.getLogger("keywire.service")

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "keywire-agent"


@dataclass(frozen=True)
class ServiceEnvironment:
    """What systemd told this process through its environment (see sd_notify(3), sd_watchdog_enabled(3))."""

    notify_socket: Optional[str] = None
    watchdog_usec: int = 0           # 0: no watchdog for this process
    journal_stream: bool = False     # stdout/stderr are connected to the journal
    invocation_id: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], pid: Optional[int] = None) -> "ServiceEnvironment":
        """Read NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID, JOURNAL_STREAM, INVOCATION_ID."""
        pid = os.getpid() if pid is None else pid
        watchdog = 0
        try:
            usec = int(environ.get("WATCHDOG_USEC", "0"))
            wpid = environ.get("WATCHDOG_PID")
            if usec > 0 and (wpid is None or int(wpid) == pid):
                watchdog = usec
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC/WATCHDOG_PID")
        return cls(notify_socket=environ.get("NOTIFY_SOCKET") or None,
                   watchdog_usec=watchdog,
                   journal_stream=bool(environ.get("JOURNAL_STREAM")),
                   invocation_id=environ.get("INVOCATION_ID", ""))

    @property
    def under_systemd(self) -> bool:
        return self.notify_socket is not None or self.journal_stream

    @property
    def watchdog_interval_s(self) -> float:
        """How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) recommends."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else 0.0


def _socket_notify(address: str, message: str) -> bool:
    """The sd_notify datagram, for systems without systemd-python (abstract '@' names included)."""
    addr = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(message.encode(), addr)
            return True
        except OSError:
            return False


def _default_sender(env: ServiceEnvironment) -> Callable[[str], bool]:
    try:
        from systemd import daemon  # type: ignore[import-not-found]
    except ImportError:
        address = env.notify_socket or ""
        return lambda message: _socket_notify(address, message)
    # libsystemd reads NOTIFY_SOCKET itself; the CLI leaves it in the environment.
    return daemon.notify


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class ServiceNotifier:
    """Tells systemd about the agent's life cycle; silent when not started by systemd.

    The processing loop calls `heartbeat()` with its running totals of samples received
    and inferences completed; a `WATCHDOG=1` goes out only when both advanced since the
    previous ping, at most once per half watchdog period.
    """

    def __init__(self, env: ServiceEnvironment, send: Optional[Callable[[str], bool]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.env = env
        self.enabled = env.notify_socket is not None
        self._send = (send or _default_sender(env)) if self.enabled else None
        self._clock = clock
        self._last_ping = float("-inf")
        self._ping_samples = -1
        self._ping_inferences = -1
        self._last_status = ""
        self.ready_sent = False
        self.pings = 0

    def _notify(self, *lines: str) -> None:
        if self._send is None:
            return
        try:
            if not self._send("\n".join(lines)):
                log.debug("sd_notify %r was not delivered", lines[0])
        except OSError as exc:  # a notify failure must never stop listening
            log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        """READY=1 (also after a reload): the first audio arrived and the model has run."""
        self.ready_sent = True
        self._notify("READY=1", *([f"STATUS={status}"] if status else []))
        self._last_status = status or self._last_status

    def reloading(self) -> None:
        """RELOADING=1 with MONOTONIC_USEC, which systemd >= 253 requires to accept it."""
        self.ready_sent = False
        self._notify("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}", "STATUS=Reloading configuration and model")

    def stopping(self) -> None:
        self._notify("STOPPING=1", "STATUS=Stopping")

    def status(self, text: str) -> None:
        """STATUS= line for `systemctl status`; sent only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self._notify(f"STATUS={text}")

    def heartbeat(self, samples_received: int, inferences_done: int) -> bool:
        """From the processing loop: ping the watchdog if audio arrived and inference ran since the last ping."""
        if not self.enabled or not self.env.watchdog_usec or not self.ready_sent:
            return False
        if samples_received <= self._ping_samples or inferences_done <= self._ping_inferences:
            return False
        now = self._clock()
        if now - self._last_ping < self.env.watchdog_interval_s:
            return False
        self._notify("WATCHDOG=1")
        self._last_ping = now
        self._ping_samples = samples_received
        self._ping_inferences = inferences_done
        self.pings += 1
        return True

    def close(self) -> None:
        self._send = None


def format_status(model: str, source: str, detections: int, mqtt: str = "off") -> str:
    """The one-line STATUS= text: model, audio source, detection count and MQTT state."""
    return f"model {model} | source {source} | {detections} detections | mqtt {mqtt}"


def detection_journal_fields(detection: "Detection") -> dict[str, Any]:
    """Structured journal fields for one detection (upper-case names as journald requires)."""
    return {
        "MESSAGE": f"detected {detection.keyword} score={detection.score} model={detection.model_name}",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
        "KEYWIRE_EVENT": "detection",
        "KEYWORD": detection.keyword,
        "SCORE": str(detection.score),
        "MODEL": detection.model_name,
        "MODEL_VERSION": detection.model_version,
        "MODEL_SHA256": detection.model_sha256,
        "EVENT_ID": detection.event_id,
        "STREAM_TIME_MS": str(detection.time_ms),
        "DETECTION_SOURCE": detection.source,
    }


def journal_available(env: ServiceEnvironment, socket_path: str = JOURNAL_SOCKET) -> bool:
    """True when running under systemd and journald's native socket exists."""
    return env.under_systemd and os.path.exists(socket_path)


def journal_handler(env: ServiceEnvironment, level: int = logging.INFO) -> Optional[logging.Handler]:
    """A logging handler sending records to the journal natively, or None outside systemd.

    Log records carrying a `detection` (see `events.LogSink`) get the structured fields too.
    """
    if not journal_available(env):
        return None
    try:
        from systemd import journal  # type: ignore[import-not-found]
    except ImportError:
        return None

    class _Handler(journal.JournalHandler):  # type: ignore[misc, name-defined]
        def emit(self, record: logging.LogRecord) -> None:
            detection = getattr(record, "detection", None)
            if detection is not None:
                fields = detection_journal_fields(detection)
                for name in ("MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER"):
                    fields.pop(name)
                record.__dict__.update(fields)
            super().emit(record)

    return _Handler(level=level, SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


class ServiceComponent:
    """Attaches a `ServiceNotifier` to the running agent (an `AgentComponent`).

    READY=1 from the agent's first-inference callback (and again after each reload),
    WATCHDOG=1 from `tick()` (the processing loop), STATUS= at most once per `status_every_s`.
    The CLI's signal handlers call `reloading()` (SIGHUP) and `stopping()` (SIGTERM).
    """

    sink = None  # consumes no detections: it counts them from the ticks

    def __init__(self, notifier: ServiceNotifier, status_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.status_every_s = status_every_s
        self._clock = clock
        self._agent: Optional[AgentContext] = None
        self._samples = 0
        self._inferences = 0
        self.detections = 0
        self._last_status = float("-inf")
        self.last_tick = clock()

    # ------------------------------------------------------------ AgentComponent
    def start(self, agent: AgentContext) -> None:
        self._agent = agent
        agent.on_ready(self._on_ready)
        agent.on_reload(self._on_reloaded)

    def tick(self, tick: Tick) -> None:
        self.last_tick = self._clock()
        self._samples += tick.samples
        self._inferences += tick.inferences
        self.detections += tick.detections
        self.notifier.heartbeat(self._samples, self._inferences)
        now = self._clock()
        if self.notifier.ready_sent and now - self._last_status >= self.status_every_s:
            self._last_status = now
            self.notifier.status(self.status_text())

    def close(self) -> None:
        self.notifier.close()

    # ------------------------------------------------------------ life cycle
    def _on_ready(self) -> None:
        self.notifier.ready(self.status_text())
        log.info("ready: %s", self.status_text())

    def _on_reloaded(self, ok: bool) -> None:
        text = self.status_text() if ok else "reload failed, running the previous configuration | " + self.status_text()
        self.notifier.ready(text)

    def reloading(self) -> None:
        """From the SIGHUP handler, before `Agent.request_reload()`."""
        self.notifier.reloading()

    def stopping(self) -> None:
        """From the SIGTERM/SIGINT handler, before `Agent.stop()`."""
        self.notifier.stopping()

    def loop_stalled(self, after_s: float = 1.0) -> bool:
        """True when the processing loop has not completed a pass for `after_s` (blocked reading
        a stalled source): a stop request must then interrupt the read instead of waiting for audio."""
        return self._clock() - self.last_tick > after_s

    def status_text(self) -> str:
        agent = self._agent
        if agent is None:
            return "starting"
        model = f"{agent.model.name}" + (f" v{agent.model.version}" if agent.model.version else "")
        audio = agent.audio_status()
        source = f"{audio.source} ({audio.state.value})"
        return format_status(model, source, self.detections, self._mqtt_state(agent))

    @staticmethod
    def _mqtt_state(agent: AgentContext) -> str:
        mqtt = agent.component_status().get("mqtt")
        if mqtt is not None:
            return str(mqtt.get("state", ""))
        return "off" if not agent.config.mqtt.url else "not started"
