"""The supervised serial link to a board: explicit state, reconnect with backoff, requests
with timeouts and retries, exactly-once detection delivery, audio with loss accounting.

One thread owns the port (open, read, decode, dispatch, periodic pings); other threads only
queue frames or wait for a request's answer, so the audio pipeline never waits on the serial
port. Protocol: firmware/PROTOCOL.md.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable, Deque, Optional

import numpy as np

from keywire.protocol.errors import ConfigError

from . import messages as m
from .frame import FrameDecoder, RxError
from .link_settings import DEFAULT_BAUD, MIN_STREAM_BAUD, BoardSpec, LinkSettings, LinkState, LinkStats
from .model_push import push_model

__all__ = ["BoardLink", "BoardSpec", "LinkSettings", "LinkState", "LinkStats", "DEFAULT_BAUD", "MIN_STREAM_BAUD"]

log = logging.getLogger("keywire.board")

DetectionHandler = Callable[[m.DetectionMsg, m.Hello], None]
EventHandler = Callable[[m.Message], None]


class _Request:
    """One outstanding request: resent until `match` accepts an answer or retries run out."""

    def __init__(self, msg: m.Message, match: Callable[[m.Message, set], bool], timeout_s: float,
                 retries: int) -> None:
        self.msg, self.match, self.timeout_s, self.retries = msg, match, timeout_s, retries
        self.seqs: set[int] = set()
        self.tries = 0
        self.deadline = 0.0
        self.answer: Optional[m.Message] = None
        self.done = threading.Event()


class BoardLink:
    """Owns the serial port to one board. `start()`, then `close()`."""

    def __init__(self, spec: BoardSpec, settings: LinkSettings = LinkSettings(),
                 on_detection: Optional[DetectionHandler] = None, on_event: Optional[EventHandler] = None,
                 serial_factory: Optional[Callable[[BoardSpec], object]] = None) -> None:
        if settings.mode == m.Mode.STREAM and spec.baud < MIN_STREAM_BAUD:
            raise ConfigError(f"stream mode needs at least {MIN_STREAM_BAUD} baud (16 kHz 16-bit audio), "
                              f"got {spec.baud}")
        self.spec = spec
        self.settings = settings
        self.on_detection = on_detection
        self.on_event = on_event
        self._serial_factory = serial_factory or _open_serial
        self.state = LinkState.DISCONNECTED
        self.stats = LinkStats()
        self.hello: Optional[m.Hello] = None
        self.board_leds = (False, False)
        self._port = None
        self._decoder = FrameDecoder()
        self._seq = 0
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._requests: list[_Request] = []
        self._req_lock = threading.Lock()
        self._seen: Deque[tuple[int, int]] = collections.deque(maxlen=256)
        self._expected_frame: Optional[int] = None
        self._audio: Deque[np.ndarray] = collections.deque()
        self._audio_samples = 0
        self._audio_cv = threading.Condition()
        self._leds = (False, False)
        self._leds_sent_at = 0.0
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._last_info = 0.0
        self._backoff = settings.backoff_initial_s
        self._next_open = 0.0
        self._connected_cv = threading.Condition()
        self._model_lock = threading.Lock()
        self._configured_boot: Optional[int] = None
        self._previous_hello: Optional[m.Hello] = None
        self._configuring: Optional[tuple[int, int]] = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "BoardLink":
        self._thread = threading.Thread(target=self._run, name=f"board-link {self.spec.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close_port()
        with self._audio_cv:
            self._audio_cv.notify_all()

    def wait_connected(self, timeout: float) -> bool:
        """True once a HELLO was received and the mode was configured."""
        with self._connected_cv:
            return self._connected_cv.wait_for(
                lambda: self.state is LinkState.CONNECTED and self._configured_boot is not None
                and self.hello is not None and self._configured_boot == self.hello.boot_id, timeout)

    @property
    def board_id(self) -> str:
        return self.hello.board_id if self.hello else self.spec.port

    # ---------------------------------------------------------------- public operations
    @property
    def leds(self) -> tuple[bool, bool]:
        """The LED state the agent last asked the board for (stream mode)."""
        return self._leds

    def set_leds(self, red: bool, green: bool) -> None:
        """Stream mode: the agent's LED decision; sent on change (and refreshed periodically)."""
        if (red, green) != self._leds:
            self._leds = (red, green)
            self._send(m.Leds(red, green))

    def read_audio(self, max_samples: int, timeout_s: float = 0.1) -> np.ndarray:
        """Up to `max_samples` streamed samples; empty when none arrived within `timeout_s`."""
        with self._audio_cv:
            if not self._audio:
                self._audio_cv.wait(timeout_s)
            parts, n = [], 0
            while self._audio and n < max_samples:
                x = self._audio[0]
                take = min(len(x), max_samples - n)
                parts.append(x[:take])
                n += take
                if take == len(x):
                    self._audio.popleft()
                else:
                    self._audio[0] = x[take:]
            self._audio_samples -= n
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def request(self, msg: m.Message, match: Callable[[m.Message, set], bool],
                timeout_s: Optional[float] = None, retries: Optional[int] = None) -> Optional[m.Message]:
        """Send `msg` and wait for the answer `match` accepts; None after all retries."""
        req = _Request(msg, match, timeout_s or self.settings.request_timeout_s,
                       self.settings.request_retries if retries is None else retries)
        with self._req_lock:
            self._requests.append(req)
            if self.state is LinkState.CONNECTED:  # first try now, not at the port thread's next pass
                req.tries = 1
                req.deadline = time.monotonic() + req.timeout_s
                req.seqs.add(self._send(msg))
        req.done.wait(req.timeout_s * (req.retries + 1) + 1.0)
        with self._req_lock:
            if req in self._requests:
                self._requests.remove(req)
        if req.answer is None:
            self.stats.requests_failed += 1
        return req.answer

    def set_params(self, params: m.SetParams) -> bool:
        """Detection parameters on the board; True when it acknowledged them as valid (they are
        then sent again whenever the board restarts)."""
        ans = self.request(params, _ack_for(m.SetParams.TYPE))
        ok = isinstance(ans, m.Ack) and ans.status == m.Status.OK
        if ok:
            self.settings = dataclasses.replace(self.settings, params=params)
        return ok

    def push_model(self, data: bytes, chunk_size: int = 1016, timeout_s: float = 0.5,
                   retries: int = 8) -> m.Hello:
        """Transfer a model into the board's staging area and activate it (model_push.py)."""
        with self._model_lock:
            return push_model(self, data, chunk_size, timeout_s, retries)

    # ---------------------------------------------------------------- port thread
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._port is None:
                if not self._try_open():
                    self._stop.wait(0.02)
                    continue
            try:
                data = self._port.read(4096)
            except Exception as exc:  # serial.SerialException, OSError: port gone
                self._lost(f"read failed: {exc}")
                continue
            now = time.monotonic()
            if data:
                for raw in self._decoder.feed(data):
                    self._on_frame(raw, now)
            self._periodic(now)

    def _try_open(self) -> bool:
        now = time.monotonic()
        if now < self._next_open:
            return False
        try:
            port = self._serial_factory(self.spec)
        except Exception as exc:
            self._next_open = now + self._backoff
            self._backoff = min(self._backoff * 2, self.settings.backoff_max_s)
            self.stats.last_error = f"cannot open {self.spec.port}: {exc}"
            log.debug(self.stats.last_error)
            return False
        self._port = port
        self._decoder.reset()
        if self.hello is not None:  # the board may have restarted meanwhile: learn its boot id again
            self._previous_hello, self.hello = self.hello, None
        self._set_state(LinkState.CONNECTING)
        self._last_rx = now
        self._last_info = 0.0
        self._backoff = self.settings.backoff_initial_s
        log.info("board port %s open at %d baud", self.spec.port, self.spec.baud)
        self._write(b"\x00")  # flush any partial frame the board may have buffered
        return True

    def _lost(self, why: str) -> None:
        if self.state is not LinkState.DISCONNECTED:
            self.stats.reconnects += 1
            log.warning("board %s lost (%s); reconnecting", self.spec.port, why)
        self.stats.last_error = why
        self._close_port()
        self._set_state(LinkState.DISCONNECTED)
        self._next_open = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.settings.backoff_max_s)

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:
                pass

    def _set_state(self, state: LinkState) -> None:
        with self._connected_cv:
            self.state = state
            self._connected_cv.notify_all()

    def _periodic(self, now: float) -> None:
        if self.state is LinkState.CONNECTING and now - self._last_info >= 0.5:
            self._last_info = now
            self._send(m.GetInfo())
        h = self.hello
        if (self.state is LinkState.CONNECTED and h is not None and self._configuring is None
                and (self._configured_boot != h.boot_id)):
            self._configuring = (h.boot_id, h.model_crc32)  # an earlier attempt failed: try again
            threading.Thread(target=self._configure, args=(h.boot_id,), daemon=True).start()
        if now - self._last_rx > self.settings.dead_s:
            self._lost(f"nothing received for {self.settings.dead_s:.1f} s")
            return
        if now - self._last_tx >= self.settings.ping_s:
            self._send(m.Ping(int(now * 1000) & 0xFFFFFFFF))
        if (self.settings.mode == m.Mode.STREAM and self.state is LinkState.CONNECTED
                and now - self._leds_sent_at >= self.settings.led_refresh_s):
            self._leds_sent_at = now
            self._send(m.Leds(*self._leds))
        with self._req_lock:
            requests = list(self._requests)
        for req in requests:
            if req.done.is_set() or now < req.deadline or self.state is not LinkState.CONNECTED:
                continue
            if req.tries > req.retries:
                req.done.set()
                continue
            req.tries += 1
            req.deadline = now + req.timeout_s
            req.seqs.add(self._send(req.msg))

    # ---------------------------------------------------------------- receiving
    def _on_frame(self, raw, now: float) -> None:  # noqa: ANN001 - RawFrame
        if raw.error is not None:
            if raw.error is RxError.OVERSIZE:
                self.stats.oversize += 1
            elif raw.error is RxError.BAD_VERSION:
                self.stats.bad_version += 1
                self._send(m.Error(m.ErrorCode.BAD_VERSION, raw.type, raw.seq, "unsupported protocol version"))
            else:
                self.stats.bad_crc += 1
            return
        self._last_rx = now
        try:
            msg = m.decode(raw)
        except m.ProtocolError as exc:
            self.stats.protocol_errors += 1
            log.warning("board %s: %s", self.spec.port, exc)
            code = m.ErrorCode.UNKNOWN_TYPE if raw.type not in m.MESSAGE_TYPES else m.ErrorCode.BAD_LENGTH
            self._send(m.Error(code, raw.type, raw.seq, str(exc)[:64]))
            return
        self.stats.frames_rx += 1
        with self._req_lock:
            for req in self._requests:
                if not req.done.is_set() and req.match(msg, req.seqs):
                    req.answer = msg
                    req.done.set()
        if isinstance(msg, m.Hello):
            self._on_hello(msg)
        elif isinstance(msg, m.Audio):
            self._on_audio(msg)
        elif isinstance(msg, m.DetectionMsg):
            self._on_detection(msg)
        elif isinstance(msg, m.Ping):
            self._send(m.Pong(msg.token, 0))
        elif isinstance(msg, m.Pong):
            self._check_boot(msg.boot_id, now)
        elif isinstance(msg, m.Leds):
            self.board_leds = (msg.red, msg.green)
        elif isinstance(msg, m.Error):
            self.stats.board_errors += 1
            log.warning("board %s error %s on type 0x%02x: %s", self.board_id, _enum_name(m.ErrorCode, msg.code),
                        msg.ref_type, msg.text)
        elif isinstance(msg, m.Log):
            log.log(msg.level if msg.level in (10, 20, 30, 40, 50) else 20, "board %s: %s", self.board_id, msg.text)
        if self.on_event is not None and not isinstance(msg, m.Audio):
            try:
                self.on_event(msg)
            except Exception:
                log.exception("board event handler failed")

    def _on_hello(self, h: m.Hello) -> None:
        previous = self.hello or self._previous_hello
        self.hello = h
        if previous is None or previous.boot_id != h.boot_id:
            if previous is not None:
                self.stats.board_resets += 1
                log.warning("board %s restarted (boot id %08x)", h.board_id, h.boot_id)
            self._expected_frame = None
            self._configured_boot = None
            log.info("board %s firmware %s, model %r, capabilities 0x%02x", h.board_id, h.firmware,
                     h.model_name, h.capabilities)
        model_changed = previous is not None and previous.model_crc32 != h.model_crc32
        if (self._configured_boot != h.boot_id or model_changed) and self._configuring != (h.boot_id, h.model_crc32):
            # Configure asynchronously: requests are answered through this thread.
            self._configuring = (h.boot_id, h.model_crc32)
            threading.Thread(target=self._configure, args=(h.boot_id,), daemon=True).start()
        self._set_state(LinkState.CONNECTED)

    def _configure(self, boot_id: int) -> None:
        s = self.settings
        ok = self.request(m.SetMode(s.mode, s.scores_every), _ack_for(m.SetMode.TYPE))
        if not isinstance(ok, m.Ack) or ok.status != m.Status.OK:
            self.stats.last_error = f"board did not accept mode {m.Mode(s.mode).name.lower()}"
            log.error("board %s: %s", self.board_id, self.stats.last_error)
            self._configuring = None
            return
        if s.params is not None:
            ack = self.request(s.params, _ack_for(m.SetParams.TYPE))
            if not isinstance(ack, m.Ack) or ack.status != m.Status.OK:
                log.error("board %s refused the detection parameters", self.board_id)
        if s.mode == m.Mode.STREAM:
            self._send(m.Leds(*self._leds))
        with self._connected_cv:
            if self.hello is not None and self.hello.boot_id == boot_id:
                self._configured_boot = boot_id
            self._configuring = None
            self._connected_cv.notify_all()

    def _check_boot(self, boot_id: int, now: float) -> bool:
        """False (and a GET_INFO) when `boot_id` is not the board we know: it was reset and its
        HELLO was lost, or we have not heard its HELLO yet."""
        h = self.hello
        if h is not None and (boot_id == h.boot_id or boot_id == 0):
            return True
        if now - self._last_info >= 0.2:
            self._last_info = now
            self._send(m.GetInfo())
        return False

    def _on_detection(self, d: m.DetectionMsg) -> None:
        hello = self.hello
        if hello is None or not self._check_boot(d.boot_id, time.monotonic()):
            return  # not acknowledged: the board sends it again once we know its boot
        self._send(m.DetectionAck(d.event_id))
        key = (d.boot_id, d.event_id)
        if key in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.append(key)
        self.stats.detections += 1
        if self.on_detection is not None:
            try:
                self.on_detection(d, hello)
            except Exception:
                log.exception("board detection handler failed")

    def _on_audio(self, a: m.Audio) -> None:
        self.stats.audio_frames += 1
        x = a.pcm()
        fill: Optional[np.ndarray] = None
        if self._expected_frame is not None and a.frame_index != self._expected_frame:
            gap = (a.frame_index - self._expected_frame) & 0xFFFFFFFF
            if gap < 0x80000000:
                self.stats.dropped_frames += gap
                if gap <= self.settings.max_gap_fill_frames:
                    fill = np.zeros(gap * len(x), np.int16)  # keep time continuous
        self._expected_frame = (a.frame_index + 1) & 0xFFFFFFFF
        limit = int(self.settings.audio_buffer_s * (self.hello.sample_rate if self.hello else 16000))
        with self._audio_cv:
            for part in (fill, x):
                if part is not None and len(part):
                    self._audio.append(part)
                    self._audio_samples += len(part)
            while self._audio_samples > limit and self._audio:
                old = self._audio.popleft()
                self._audio_samples -= len(old)
                self.stats.overflow_samples += len(old)
            self._audio_cv.notify_all()

    # ---------------------------------------------------------------- sending
    def _send(self, msg: m.Message) -> int:
        with self._write_lock:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
        self._write(msg.to_frame(seq))
        return seq

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            return
        try:
            with self._write_lock:
                port.write(data)
            self._last_tx = time.monotonic()
            self.stats.tx_frames += 1
        except Exception as exc:  # write timeout or port gone: the reader thread reconnects
            self.stats.last_error = f"write failed: {exc}"


def _open_serial(spec: BoardSpec):  # noqa: ANN202 - serial.Serial
    import serial

    return serial.Serial(spec.port, spec.baud, timeout=0.02, write_timeout=0.2)


def _ack_for(msg_type: int) -> Callable[[m.Message, set], bool]:
    return lambda a, seqs: isinstance(a, m.Ack) and a.acked_type == msg_type and a.acked_seq in seqs


def _enum_name(cls: type, value: int) -> str:
    try:
        return cls(value).name
    except ValueError:
        return str(value)
