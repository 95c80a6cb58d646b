"""ctypes binding of the firmware's portable C core (firmware/build/libkwcore.so).

The board emulator runs the real firmware core through this binding (protocol handling,
post-processing, model staging), and tests compare it with the agent's Python codec and
detector. The agent itself never needs it.
"""
from __future__ import annotations

import ctypes
import fcntl
import subprocess
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .messages import BoardError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
LIB_NAME = "libkwcore.so"

_u8p = ctypes.POINTER(ctypes.c_uint8)
MAX_CLASSES = 32
ID_MAX = 32


class Params(ctypes.Structure):
    """struct kw_params."""

    _fields_ = [("average_window_duration_ms", ctypes.c_uint16), ("suppression_ms", ctypes.c_uint16),
                ("latency_ms", ctypes.c_uint16), ("detection_threshold", ctypes.c_uint8),
                ("minimum_count", ctypes.c_uint8), ("n_thresholds", ctypes.c_uint8),
                ("thresholds", ctypes.c_uint8 * MAX_CLASSES)]

    @classmethod
    def from_settings(cls, s) -> "Params":  # noqa: ANN001 - DetectionSettings
        thresholds = tuple(s.detection_threshold_list or ())
        p = cls(min(s.average_window_duration_ms, 0xFFFF), min(s.suppression_ms, 0xFFFF),
                min(s.latency_ms, 0xFFFF), s.detection_threshold, min(s.minimum_count, 255), len(thresholds))
        for i, t in enumerate(thresholds):
            p.thresholds[i] = t
        return p


class BoardConfigC(ctypes.Structure):
    """struct kw_board_config."""

    _fields_ = [("board_id", ctypes.c_char * (ID_MAX + 1)), ("boot_id", ctypes.c_uint32),
                ("flash_capacity", ctypes.c_uint32), ("sample_rate", ctypes.c_uint16),
                ("capabilities", ctypes.c_uint32)]


class DetectResult(ctypes.Structure):
    _fields_ = [("class_index", ctypes.c_int), ("score", ctypes.c_int), ("detected", ctypes.c_int),
                ("reset_frontend", ctypes.c_int)]


UART_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _u8p, ctypes.c_uint32)
MILLIS = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)
LED_SET = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)
FLASH_ERASE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
FLASH_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, _u8p, ctypes.c_uint32)
FLASH_READ = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, _u8p, ctypes.c_uint32)
MODEL_ACTIVATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32)


class Hal(ctypes.Structure):
    """struct kw_hal."""

    _fields_ = [("ctx", ctypes.c_void_p), ("uart_write", UART_WRITE), ("millis", MILLIS), ("led_set", LED_SET),
                ("flash_erase", FLASH_ERASE), ("flash_write", FLASH_WRITE), ("flash_read", FLASH_READ),
                ("model_activate", MODEL_ACTIVATE)]


STAT_NAMES = ("rx_frames", "rx_bad_crc", "rx_oversize", "rx_bad_version", "rx_unknown_type", "rx_bad_length",
              "tx_frames", "tx_dropped", "detections", "detections_resent", "detections_expired",
              "audio_frames", "inferences", "model_errors")

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def build_core(firmware_dir: Path = FIRMWARE_DIR) -> Path:
    """Build (if needed) and return the shared library path; `BoardError` when that fails."""
    lib = firmware_dir / "build" / LIB_NAME
    if not (firmware_dir / "Makefile").exists():
        if lib.exists():
            return lib
        raise BoardError(f"firmware sources not found at {firmware_dir}; the C core library is needed")
    (firmware_dir / "build").mkdir(exist_ok=True)
    with open(firmware_dir / "build" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test sessions must not load a half-written library
        proc = subprocess.run(["make", "-s", "-C", str(firmware_dir), "lib"], capture_output=True, text=True)
    if proc.returncode != 0 or not lib.exists():
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["make failed"]
        raise BoardError(f"cannot build the firmware core library: {last[0]}")
    return lib


def load_core(path: Optional[Path] = None) -> ctypes.CDLL:
    """The C core (built on first use), with argument and result types declared."""
    global _lib
    with _lock:
        if _lib is not None and path is None:
            return _lib
        lib = ctypes.CDLL(str(path or build_core()))
        c = ctypes
        sig = {
            "kw_crc32": (c.c_uint32, [c.c_uint32, c.c_char_p, c.c_size_t]),
            "kw_cobs_encode": (c.c_size_t, [c.c_char_p, c.c_size_t, _u8p, c.c_size_t]),
            "kw_cobs_decode": (c.c_long, [c.c_char_p, c.c_size_t, _u8p, c.c_size_t]),
            "kw_frame_encode": (c.c_size_t, [c.c_uint8, c.c_uint16, c.c_char_p, c.c_size_t, _u8p, c.c_size_t]),
            "kw_sizeof_board": (c.c_size_t, []),
            "kw_sizeof_decoder": (c.c_size_t, []),
            "kw_sizeof_detector": (c.c_size_t, []),
            "kw_max_encoded": (c.c_uint32, []),
            "kw_decoder_init": (None, [c.c_void_p]),
            "kw_decoder_feed": (c.c_int, [c.c_void_p, c.c_uint8]),
            "kw_decoder_frame_type": (c.c_uint8, [c.c_void_p]),
            "kw_decoder_frame_seq": (c.c_uint16, [c.c_void_p]),
            "kw_decoder_frame_len": (c.c_uint16, [c.c_void_p]),
            "kw_decoder_frame_payload": (c.c_void_p, [c.c_void_p]),
            "kw_detector_setup": (c.c_int, [c.c_void_p, c.c_uint8, _u8p, c.c_uint32, c.c_uint8, _u8p,
                                            c.c_uint32, c.c_uint8, c.c_uint32]),
            "kw_detector_step": (None, [c.c_void_p, c.c_int64, _u8p, c.POINTER(c.c_int32)]),
            "kw_detector_reset": (None, [c.c_void_p]),
            "kw_board_init": (None, [c.c_void_p, c.POINTER(Hal), c.POINTER(BoardConfigC), c.POINTER(c.c_int16),
                                     c.c_uint32]),
            "kw_board_start": (None, [c.c_void_p]),
            "kw_board_set_model": (c.c_int, [c.c_void_p, c.c_char_p, c.POINTER(c.c_char_p), c.c_uint8,
                                             c.c_uint32, c.c_uint32, c.POINTER(Params)]),
            "kw_board_set_mode": (None, [c.c_void_p, c.c_uint8]),
            "kw_board_rx": (None, [c.c_void_p, c.c_char_p, c.c_uint32]),
            "kw_board_poll": (None, [c.c_void_p]),
            "kw_board_audio": (c.c_uint32, [c.c_void_p, c.POINTER(c.c_int16), c.c_uint32]),
            "kw_board_scores": (DetectResult, [c.c_void_p, _u8p]),
            "kw_board_activity": (None, [c.c_void_p, c.c_int]),
            "kw_board_log": (None, [c.c_void_p, c.c_uint8, c.c_char_p]),
            "kw_board_stats_array": (c.c_uint32, [c.c_void_p, c.POINTER(c.c_uint32), c.c_uint32]),
            "kw_board_mode": (c.c_uint8, [c.c_void_p]),
            "kw_board_scores_every": (c.c_uint8, [c.c_void_p]),
            "kw_board_pending": (c.c_uint32, [c.c_void_p]),
            "kw_board_params": (None, [c.c_void_p, c.POINTER(Params)]),
        }
        for name, (res, args) in sig.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        if path is None:
            _lib = lib
        return lib


def c_crc32(data: bytes) -> int:
    return int(load_core().kw_crc32(0, data, len(data)))


def c_encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A wire frame built by the C core."""
    lib = load_core()
    out = (ctypes.c_uint8 * (lib.kw_max_encoded() + 1))()
    n = lib.kw_frame_encode(msg_type, seq & 0xFFFF, payload, len(payload), out, len(out))
    if n == 0:
        raise ValueError("frame does not fit")
    return bytes(out[:n])


class CDecoder:
    """The C frame decoder; `feed` returns (result_code, type, seq, payload) per completed frame."""

    FRAME, BAD_CRC, SHORT, OVERSIZE, BAD_VERSION = 1, 2, 3, 4, 5

    def __init__(self) -> None:
        self._lib = load_core()
        self._mem = ctypes.create_string_buffer(self._lib.kw_sizeof_decoder())
        self._lib.kw_decoder_init(self._mem)

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        out = []
        lib, mem = self._lib, self._mem
        for b in data:
            r = lib.kw_decoder_feed(mem, b)
            if r:
                payload = b""
                if r == self.FRAME:
                    n = lib.kw_decoder_frame_len(mem)
                    payload = ctypes.string_at(lib.kw_decoder_frame_payload(mem), n)
                out.append((r, lib.kw_decoder_frame_type(mem), lib.kw_decoder_frame_seq(mem), payload))
        return out


def _u8array(values: Sequence[int]) -> ctypes.Array:
    return (ctypes.c_uint8 * max(1, len(values)))(*values)


class CDetector:
    """The firmware's post-processing (kw_detect.c), same interface shape as `Detector`."""

    def __init__(self, classes: Sequence[str], settings) -> None:  # noqa: ANN001 - DetectionSettings
        self._lib = load_core()
        self._mem = ctypes.create_string_buffer(self._lib.kw_sizeof_detector())
        self.n = len(classes)
        ignore = _u8array([1 if c.startswith("_") else 0 for c in classes])
        tl = settings.detection_threshold_list
        rc = self._lib.kw_detector_setup(self._mem, self.n, ignore, settings.average_window_duration_ms,
                                         settings.detection_threshold, _u8array(tl) if tl else None,
                                         settings.suppression_ms, settings.minimum_count, settings.latency_ms)
        if rc != 0:
            raise BoardError("the C detector rejected the detection settings")
        self._out = (ctypes.c_int32 * 3)()

    def process(self, now_ms: int, scores: Sequence[int]) -> tuple[int, int, bool]:
        """(class_index, score, detected) for one result."""
        self._lib.kw_detector_step(self._mem, now_ms, _u8array([int(s) for s in scores]), self._out)
        return int(self._out[0]), int(self._out[1]), bool(self._out[2])

    def reset(self) -> None:
        self._lib.kw_detector_reset(self._mem)


class BoardHal:
    """What a board core needs from its host; the emulator subclasses this."""

    def uart_write(self, data: bytes) -> bool:
        raise NotImplementedError

    def millis(self) -> int:
        raise NotImplementedError

    def led_set(self, red: bool, green: bool) -> None:
        pass

    def flash_erase(self, size: int) -> bool:
        return False

    def flash_write(self, offset: int, data: bytes) -> bool:
        return False

    def flash_read(self, offset: int, n: int) -> Optional[bytes]:
        return None

    def model_activate(self, size: int, crc32: int) -> bool:
        return False


class CBoard:
    """One instance of the firmware's board core (kw_board.c) driven through a `BoardHal`."""

    def __init__(self, hal: BoardHal, board_id: str, boot_id: int, flash_capacity: int,
                 sample_rate: int = 16000, capabilities: int = 0x1F, ring_samples: int = 8192) -> None:
        self._lib = load_core()
        self._mem = ctypes.create_string_buffer(self._lib.kw_sizeof_board())
        self.hal = hal
        self._ring = (ctypes.c_int16 * ring_samples)()
        self._cb = self._make_hal(hal)
        cfg = BoardConfigC(board_id.encode()[:ID_MAX], boot_id & 0xFFFFFFFF, flash_capacity, sample_rate,
                           capabilities)
        self._lib.kw_board_init(self._mem, ctypes.byref(self._cb), ctypes.byref(cfg), self._ring, ring_samples)
        self.errors: list[BaseException] = []

    def _guard(self, fn: Callable, default):  # noqa: ANN001, ANN202
        def wrapped(*args):  # noqa: ANN002, ANN202
            try:
                return fn(*args)
            except Exception as exc:  # a callback must never unwind through C
                self.errors.append(exc)
                return default
        return wrapped

    def _make_hal(self, hal: BoardHal) -> Hal:
        g = self._guard
        return Hal(None,
                   UART_WRITE(g(lambda _c, p, n: 0 if hal.uart_write(ctypes.string_at(p, n)) else -1, -1)),
                   MILLIS(g(lambda _c: hal.millis() & 0xFFFFFFFF, 0)),
                   LED_SET(g(lambda _c, r, gr: hal.led_set(bool(r), bool(gr)), None)),
                   FLASH_ERASE(g(lambda _c, size: 0 if hal.flash_erase(size) else -1, -1)),
                   FLASH_WRITE(g(lambda _c, off, p, n: 0 if hal.flash_write(off, ctypes.string_at(p, n)) else -1, -1)),
                   FLASH_READ(g(self._flash_read, -1)),
                   MODEL_ACTIVATE(g(lambda _c, size, crc: 0 if hal.model_activate(size, crc) else -1, -1)))

    def _flash_read(self, _c, off: int, out, n: int) -> int:  # noqa: ANN001
        data = self.hal.flash_read(off, n)
        if data is None or len(data) != n:
            return -1
        ctypes.memmove(out, data, n)
        return 0

    # ---------------------------------------------------------------- core API
    def start(self) -> None:
        self._lib.kw_board_start(self._mem)

    def set_model(self, name: str, classes: Sequence[str], size: int, crc32: int, settings) -> None:  # noqa: ANN001
        labels = (ctypes.c_char_p * len(classes))(*[c.encode()[:31] for c in classes])
        params = Params.from_settings(settings)
        if self._lib.kw_board_set_model(self._mem, name.encode()[:ID_MAX], labels, len(classes), size, crc32,
                                        ctypes.byref(params)) != 0:
            raise BoardError(f"the board core rejected model {name!r} ({len(classes)} classes)")

    def set_mode(self, mode: int) -> None:
        self._lib.kw_board_set_mode(self._mem, mode)

    def rx(self, data: bytes) -> None:
        if data:
            self._lib.kw_board_rx(self._mem, data, len(data))

    def poll(self) -> None:
        self._lib.kw_board_poll(self._mem)

    def audio(self, samples: np.ndarray) -> int:
        x = np.ascontiguousarray(samples, dtype=np.int16)
        return int(self._lib.kw_board_audio(self._mem, x.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)), len(x)))

    def scores(self, scores: Sequence[int]) -> tuple[int, int, bool]:
        r = self._lib.kw_board_scores(self._mem, _u8array([int(s) for s in scores]))
        return r.class_index, r.score, bool(r.detected)

    def activity(self, active: bool) -> None:
        self._lib.kw_board_activity(self._mem, int(active))

    def log(self, level: int, text: str) -> None:
        self._lib.kw_board_log(self._mem, level, text.encode()[:120])

    @property
    def mode(self) -> int:
        return int(self._lib.kw_board_mode(self._mem))

    @property
    def pending_detections(self) -> int:
        return int(self._lib.kw_board_pending(self._mem))

    def params(self) -> Params:
        p = Params()
        self._lib.kw_board_params(self._mem, ctypes.byref(p))
        return p

    def stats(self) -> dict[str, int]:
        arr = (ctypes.c_uint32 * len(STAT_NAMES))()
        n = self._lib.kw_board_stats_array(self._mem, arr, len(arr))
        return {name: int(arr[i]) for i, name in enumerate(STAT_NAMES[:n])}
