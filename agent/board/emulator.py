"""A BRD2601 stand-in on a pseudo-terminal, for tests and demos without hardware.

The emulated board's microphone is a WAV file played at real-time pace; its protocol,
post-processing, detection delivery and model staging are the firmware's C core
(`ccore.CBoard` over libkwcore.so); in detect mode the agent's frontend and the TFLite
interpreter stand in for the board's frontend and TFLite Micro. Faults can be injected on
the wire: garbage bursts, bit flips, dropped frames, board resets and unplug/replug.

The port is published as a symlink (stable across replugs, like /dev/serial/by-id/...).
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import random
import tempfile
import time
import tty
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from keywire.protocol.errors import KeywireError, ModelError

from ..model import KeywordModel
from ..audio_io import read_wav
from ..spotter import KeywordSpotter
from . import messages as m
from .ccore import BoardHal, CBoard

log = logging.getLogger("keywire.board.emulator")

FIRMWARE_VERSION = "0.1.0"
TICK_S = 0.01


@dataclass(frozen=True)
class Faults:
    """Wire faults. Rates are per byte (bit flips) or per frame (drops) or per second (garbage)."""

    garbage_per_s: float = 0.0       # bursts of 1-64 random bytes between frames
    bit_flip_rate: float = 0.0       # probability that a byte gets one bit flipped
    drop_rate: float = 0.0           # probability that a board frame is lost on the wire
    both_directions: bool = True     # flips and garbage also on agent -> board bytes
    reset_at_s: Tuple[float, ...] = ()        # board resets (new boot id, new HELLO)
    disconnect_at_s: Tuple[float, ...] = ()   # unplug: the port disappears ...
    disconnect_s: float = 1.0                 # ... for this long, then the board powers up again
    seed: int = 0


@dataclass(frozen=True)
class EmulatorConfig:
    audio: Path
    model: Optional[Path] = None
    mode: m.Mode = m.Mode.DETECT
    baud: int = 921600
    board_id: str = "brd2601-emulator"
    flash_capacity: int = 512 * 1024
    faults: Faults = Faults()
    port_link: Optional[Path] = None  # symlink to create; default: a fresh temporary folder
    loop: bool = False                # play the WAV again and again
    tail_s: float = 3.0               # keep running (silence) after the audio ends
    activity_dbfs: float = -50.0


@dataclass
class EmulatorStats:
    frames_written: int = 0
    frames_dropped_uart: int = 0     # the emulated UART could not take the frame (baud limit)
    frames_dropped_fault: int = 0
    bytes_flipped: int = 0
    garbage_bursts: int = 0
    resets: int = 0
    disconnects: int = 0
    models_activated: int = 0
    models_rejected: int = 0
    red_on: int = 0                  # times the red LED was switched on (detections)
    green_on: int = 0                # times the green LED was switched on (audio activity)
    board: dict = field(default_factory=dict)


class _Pty:
    """A pseudo-terminal pair in raw mode whose slave path is published through a symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1

    def open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        tmp = self.link.with_name(self.link.name + ".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.link)

    def close(self) -> None:
        try:
            self.link.unlink()
        except FileNotFoundError:
            pass
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    @property
    def is_open(self) -> bool:
        return self.master >= 0


class BoardEmulator(BoardHal):
    """`open()` publishes the port and returns its path; `run()` plays the audio."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self._rng = random.Random(config.faults.seed)
        self._nprng = np.random.default_rng(config.faults.seed)
        link = config.port_link or Path(tempfile.mkdtemp(prefix="keywire-board-")) / "ttyBOARD"
        self._pty = _Pty(Path(link))
        self._samples = read_wav(config.audio, 16000)
        self._model: Optional[KeywordModel] = None
        self._model_bytes = b""
        if config.model is not None:
            self._model = KeywordModel.load(config.model)  # ModelError names a missing or bad file
            self._model_bytes = self._model.data
            if self._model.frontend.sample_rate_hz != 16000:
                raise ModelError(f"the board's microphone runs at 16 kHz; model {config.model} needs "
                                 f"{self._model.frontend.sample_rate_hz} Hz")
        self._flash = bytearray()
        self._board: Optional[CBoard] = None
        self._spotter: Optional[KeywordSpotter] = None
        self._boot_t = 0.0
        self._mic_samples = 0
        self._clock_ms: Optional[int] = None
        self._chunk_base = (0, 0)
        self._tokens = 0.0
        self._token_t = 0.0
        self.leds = (False, False)

    # ---------------------------------------------------------------- HAL (called by the C core)
    def uart_write(self, data: bytes) -> bool:
        now = time.monotonic()
        rate = self.config.baud / 10.0
        self._tokens = min(4096.0, self._tokens + (now - self._token_t) * rate)
        self._token_t = now
        if len(data) > self._tokens:
            self.stats.frames_dropped_uart += 1
            return False
        self._tokens -= len(data)
        f = self.config.faults
        if f.drop_rate and self._rng.random() < f.drop_rate:
            self.stats.frames_dropped_fault += 1
            return True  # sent, but lost on the wire
        self._wire_out(self._flip(data))
        self.stats.frames_written += 1
        return True

    def millis(self) -> int:
        """The board's clock runs with its microphone (audio time since boot), so what the
        core decides depends on the audio, not on how busy this machine is."""
        if self._clock_ms is not None:
            return self._clock_ms
        return self._mic_samples * 1000 // 16000

    def led_set(self, red: bool, green: bool) -> None:
        self.stats.red_on += int(red and not self.leds[0])
        self.stats.green_on += int(green and not self.leds[1])
        self.leds = (red, green)

    def flash_erase(self, size: int) -> bool:
        self._flash = bytearray(b"\xff" * size)
        return True

    def flash_write(self, offset: int, data: bytes) -> bool:
        if offset + len(data) > len(self._flash):
            return False
        self._flash[offset:offset + len(data)] = data
        return True

    def flash_read(self, offset: int, n: int) -> Optional[bytes]:
        if offset + n > len(self._flash):
            return None
        return bytes(self._flash[offset:offset + n])

    def model_activate(self, size: int, crc32: int) -> bool:
        data = bytes(self._flash[:size])
        try:
            model = KeywordModel.from_bytes(data, source="staged")
            if model.frontend.sample_rate_hz != 16000:
                raise ModelError("model is not for 16 kHz audio")
        except KeywireError as exc:
            log.warning("staged model rejected: %s", exc)
            self.stats.models_rejected += 1
            return False
        self._model, self._model_bytes = model, data
        self._install_model()
        self.stats.models_activated += 1
        return True

    # ---------------------------------------------------------------- board lifecycle
    def _install_model(self) -> None:
        assert self._board is not None
        model = self._model
        if model is None:
            self._spotter = None
            return
        if self._spotter is None:
            self._spotter = KeywordSpotter(model, on_scores=self._on_scores)
        else:
            self._spotter.swap_model(model)
        self._board.set_model(model.name[:32], model.classes, len(self._model_bytes), zlib.crc32(self._model_bytes),
                              model.detection)

    def _on_scores(self, now_ms: int, scores: np.ndarray) -> None:
        if self._board is not None:
            mic_ms, spot_ms = self._chunk_base
            self._clock_ms = mic_ms + (now_ms - spot_ms)  # the inference's own time within the block
            try:
                self._board.scores(scores)
            finally:
                self._clock_ms = None

    def boot(self) -> None:
        """Power up: fresh core state, new boot id, HELLO."""
        if self._board is not None:
            self.stats.board = self._board.stats()
        self._boot_t = time.monotonic()
        self._mic_samples = 0
        self._clock_ms = None
        self._token_t = self._boot_t
        self._tokens = 4096.0  # an idle UART: its transmit buffer is empty
        self._board = CBoard(self, self.config.board_id, self._rng.getrandbits(32), self.config.flash_capacity)
        self._spotter = None
        self._install_model()
        self._board.set_mode(self.config.mode)
        self._board.start()

    # ---------------------------------------------------------------- wire
    def _flip(self, data: bytes) -> bytes:
        rate = self.config.faults.bit_flip_rate
        if not rate:
            return data
        arr = np.frombuffer(data, np.uint8).copy()
        hit = self._nprng.random(len(arr)) < rate
        n = int(hit.sum())
        if n:
            arr[hit] ^= (1 << self._nprng.integers(0, 8, n)).astype(np.uint8)
            self.stats.bytes_flipped += n
        return arr.tobytes()

    def _wire_out(self, data: bytes) -> None:
        if not self._pty.is_open:
            return
        try:
            os.write(self._pty.master, data)
        except BlockingIOError:
            self.stats.frames_dropped_uart += 1
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise

    def _wire_in(self) -> bytes:
        if not self._pty.is_open:
            return b""
        try:
            return os.read(self._pty.master, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # nobody has the port open
                return b""
            raise

    # ---------------------------------------------------------------- main loop
    def open(self) -> Path:
        """Create the pseudo-terminal; returns the published port path."""
        self._pty.open()
        return self._pty.link

    def close(self) -> None:
        if self._board is not None:
            self.stats.board = self._board.stats()
        self._pty.close()

    def run(self, stop=None) -> EmulatorStats:  # noqa: ANN001 - threading.Event
        """Play the audio in real time (then `tail_s` of silence); returns the statistics."""
        cfg, f = self.config, self.config.faults
        if not self._pty.is_open:
            self.open()
        self.boot()
        start = time.monotonic()
        fed = 0
        total = len(self._samples)
        resets = sorted(f.reset_at_s)
        disconnects = sorted(f.disconnect_at_s)
        replug_at: Optional[float] = None
        end_at: Optional[float] = None
        period = max(1, int(16000 * TICK_S))
        while stop is None or not stop.is_set():
            now = time.monotonic()
            t = now - start
            if resets and t >= resets[0]:
                resets.pop(0)
                self.stats.resets += 1
                log.info("fault: board reset at %.1f s", t)
                self.boot()
            if disconnects and t >= disconnects[0] and replug_at is None:
                disconnects.pop(0)
                self.stats.disconnects += 1
                log.info("fault: unplug at %.1f s for %.1f s", t, f.disconnect_s)
                self._pty.close()
                replug_at = now + f.disconnect_s
            if replug_at is not None and now >= replug_at:
                replug_at = None
                self._pty.open()
                self.boot()  # USB powers the board: it starts again
            if f.garbage_per_s and self._rng.random() < f.garbage_per_s * TICK_S:
                self.stats.garbage_bursts += 1
                self._wire_out(bytes(self._rng.getrandbits(8) for _ in range(self._rng.randint(1, 64))))
            data = self._wire_in()
            if data and f.both_directions:
                data = self._flip(data)
                if f.garbage_per_s and self._rng.random() < f.garbage_per_s * TICK_S:
                    data = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randint(1, 64))) + data
            board = self._board
            assert board is not None
            if replug_at is None:
                board.rx(data)
            # microphone: everything due by now, in 10 ms blocks
            due = int(t * 16000)
            while fed + period <= due:
                if total and (fed < total or cfg.loop):
                    pos = fed % total
                    x = self._samples[pos:pos + period]
                    if len(x) < period:
                        x = np.concatenate([x, np.zeros(period - len(x), np.int16)])
                else:
                    x = np.zeros(period, np.int16)
                    if end_at is None:
                        end_at = now + cfg.tail_s
                fed += period
                if replug_at is None:
                    self._microphone(board, x)
            board.poll()
            if board.errors:
                raise board.errors[0]
            if end_at is not None and now >= end_at:
                break
            time.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        self.stats.board = board.stats()
        return self.stats

    def _microphone(self, board: CBoard, x: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean(x.astype(np.float32) ** 2)))
        board.activity(20 * np.log10(max(rms, 1e-3) / 32768.0) >= self.config.activity_dbfs)
        if board.mode == m.Mode.STREAM:
            board.audio(x)
        elif board.mode == m.Mode.DETECT and self._spotter is not None:
            lat = board.params().latency_ms
            if lat and lat != self._spotter.detection.latency_ms:
                self._spotter.set_detection(dataclasses.replace(self._spotter.detection, latency_ms=lat))
            self._chunk_base = (self._mic_samples * 1000 // 16000, self._spotter.time_ms)
            self._spotter.feed(x)
        self._mic_samples += len(x)
