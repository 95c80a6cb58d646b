"""Typed board protocol messages; each knows its own wire form (firmware/PROTOCOL.md).

`msg.to_frame(seq)` gives the bytes to write; `decode(raw_frame)` turns a received
`RawFrame` back into a message (`ProtocolError` when the payload does not fit its type).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, fields
from typing import ClassVar, Tuple, Type

import numpy as np

from keywire.protocol.errors import ExitCode, KeywireError
from .frame import MAX_PAYLOAD, PROTOCOL_VERSION, RawFrame, encode_frame


class BoardError(KeywireError):
    """The board link or the board refused or failed an operation."""

    exit_code = ExitCode.BOARD


class ProtocolError(BoardError):
    """A frame's payload does not match its message type, or the type is unknown."""


class Mode(enum.IntEnum):
    IDLE = 0
    DETECT = 1
    STREAM = 2


class Cap(enum.IntFlag):
    DETECT = 0x01
    STREAM = 0x02
    MODEL_UPDATE = 0x04
    SCORES = 0x08
    LEDS = 0x10


class Status(enum.IntEnum):
    OK = 0
    TOO_LARGE = 1
    BAD_OFFSET = 2
    CRC_MISMATCH = 3
    NOT_IN_TRANSFER = 4
    ACTIVATE_FAILED = 5
    FLASH_ERROR = 6
    BAD_PARAMS = 7
    UNSUPPORTED = 8


class ErrorCode(enum.IntEnum):
    NONE = 0
    UNKNOWN_TYPE = 1
    BAD_VERSION = 2
    OVERSIZE = 3
    BAD_LENGTH = 4
    MODEL_TOO_LARGE = 5
    BAD_STATE = 6
    BAD_PARAMS = 7


class Stage(enum.IntEnum):
    BEGIN = 0
    CHUNK = 1
    END = 2


AUDIO_FRAME_SAMPLES = 320
MAX_CHUNK = MAX_PAYLOAD - 4


def _str(text: str, limit: int) -> bytes:
    b = text.encode("utf-8")[:limit]
    return bytes([len(b)]) + b


class _Reader:
    """Little-endian payload reader raising ProtocolError on a short or long payload."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProtocolError(f"{self.name} payload too short ({len(self.data)} bytes)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def one(self, fmt: str) -> int:
        return self.take(fmt)[0]

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"{self.name} payload too short ({len(self.data)} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def str(self) -> str:
        return self.raw(self.one("<B")).decode("utf-8", errors="replace")

    def rest(self) -> bytes:
        b = self.data[self.pos:]
        self.pos = len(self.data)
        return b

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.name} payload has {len(self.data) - self.pos} extra bytes")


@dataclass(frozen=True)
class Message:
    """Base: subclasses set TYPE and implement payload()/parse()."""

    TYPE: ClassVar[int] = -1

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, r: _Reader) -> "Message":
        return cls()

    def to_frame(self, seq: int = 0) -> bytes:
        return encode_frame(self.TYPE, seq, self.payload())

    @classmethod
    def from_payload(cls, payload: bytes) -> "Message":
        r = _Reader(payload, cls.__name__)
        msg = cls.parse(r)
        r.done()
        return msg

    @classmethod
    def from_frame(cls, frame: RawFrame) -> "Message":
        if frame.type != cls.TYPE:
            raise ProtocolError(f"frame type 0x{frame.type:02x} is not {cls.__name__}")
        return cls.from_payload(frame.payload)


@dataclass(frozen=True)
class FixedMessage(Message):
    """A message whose payload is its fields in order, packed with one struct `FORMAT`."""

    FORMAT: ClassVar[str] = "<"

    def payload(self) -> bytes:
        return struct.pack(self.FORMAT, *(getattr(self, f.name) for f in fields(self)))

    @classmethod
    def parse(cls, r: _Reader) -> "Message":
        return cls(*r.take(cls.FORMAT))


@dataclass(frozen=True)
class Hello(Message):
    TYPE: ClassVar[int] = 0x01
    protocol_version: int = PROTOCOL_VERSION
    fw_version: Tuple[int, int, int] = (0, 0, 0)
    capabilities: int = 0
    boot_id: int = 0
    flash_capacity: int = 0
    sample_rate: int = 16000
    mode: int = Mode.DETECT
    board_id: str = ""
    model_name: str = ""
    model_size: int = 0
    model_crc32: int = 0

    @property
    def firmware(self) -> str:
        return ".".join(str(v) for v in self.fw_version)

    def payload(self) -> bytes:
        return (struct.pack("<BBBBIIIHB", self.protocol_version, *self.fw_version, self.capabilities,
                            self.boot_id, self.flash_capacity, self.sample_rate, self.mode)
                + _str(self.board_id, 32) + _str(self.model_name, 32)
                + struct.pack("<II", self.model_size, self.model_crc32))

    @classmethod
    def parse(cls, r: _Reader) -> "Hello":
        pv, a, b, c, caps, boot, flash, rate, mode = r.take("<BBBBIIIHB")
        board_id, model_name = r.str(), r.str()
        size, crc = r.take("<II")
        return cls(pv, (a, b, c), caps, boot, flash, rate, mode, board_id, model_name, size, crc)


@dataclass(frozen=True)
class GetInfo(Message):
    TYPE: ClassVar[int] = 0x02


@dataclass(frozen=True)
class Ping(FixedMessage):
    TYPE: ClassVar[int] = 0x03
    FORMAT: ClassVar[str] = "<I"
    token: int = 0


@dataclass(frozen=True)
class Pong(FixedMessage):
    TYPE: ClassVar[int] = 0x04
    FORMAT: ClassVar[str] = "<II"
    token: int = 0
    boot_id: int = 0              # the answering board's boot id (0 from the agent)


@dataclass(frozen=True)
class Audio(Message):
    TYPE: ClassVar[int] = 0x10
    frame_index: int = 0
    samples: bytes = b""          # little-endian int16

    def payload(self) -> bytes:
        return struct.pack("<IH", self.frame_index, len(self.samples) // 2) + self.samples

    @classmethod
    def parse(cls, r: _Reader) -> "Audio":
        index, n = r.take("<IH")
        return cls(index, r.raw(2 * n))

    def pcm(self) -> np.ndarray:
        return np.frombuffer(self.samples, dtype="<i2").astype(np.int16)


@dataclass(frozen=True)
class DetectionMsg(Message):
    TYPE: ClassVar[int] = 0x11
    boot_id: int = 0
    event_id: int = 0
    time_ms: int = 0
    class_index: int = 0
    score: int = 0
    label: str = ""

    def payload(self) -> bytes:
        return (struct.pack("<IIIBB", self.boot_id, self.event_id, self.time_ms, self.class_index, self.score)
                + _str(self.label, 31))

    @classmethod
    def parse(cls, r: _Reader) -> "DetectionMsg":
        boot_id, event_id, t, c, s = r.take("<IIIBB")
        return cls(boot_id, event_id, t, c, s, r.str())


@dataclass(frozen=True)
class DetectionAck(FixedMessage):
    TYPE: ClassVar[int] = 0x12
    FORMAT: ClassVar[str] = "<I"
    event_id: int = 0


@dataclass(frozen=True)
class Scores(Message):
    TYPE: ClassVar[int] = 0x13
    time_ms: int = 0
    scores: Tuple[int, ...] = ()

    def payload(self) -> bytes:
        return struct.pack("<IB", self.time_ms, len(self.scores)) + bytes(self.scores)

    @classmethod
    def parse(cls, r: _Reader) -> "Scores":
        t, n = r.take("<IB")
        return cls(t, tuple(r.raw(n)))


@dataclass(frozen=True)
class Leds(FixedMessage):
    TYPE: ClassVar[int] = 0x20
    FORMAT: ClassVar[str] = "<??"
    red: bool = False
    green: bool = False


@dataclass(frozen=True)
class SetParams(Message):
    TYPE: ClassVar[int] = 0x21
    average_window_duration_ms: int = 1000
    suppression_ms: int = 1500
    latency_ms: int = 100
    detection_threshold: int = 185
    minimum_count: int = 3
    thresholds: Tuple[int, ...] = ()

    @classmethod
    def from_settings(cls, s) -> "SetParams":  # noqa: ANN001 - DetectionSettings
        """From `keywire.protocol.detection.DetectionSettings` (u16 fields are clamped)."""
        return cls(min(s.average_window_duration_ms, 0xFFFF), min(s.suppression_ms, 0xFFFF),
                   min(s.latency_ms, 0xFFFF), s.detection_threshold, min(s.minimum_count, 255),
                   tuple(s.detection_threshold_list or ()))

    def payload(self) -> bytes:
        return struct.pack("<HHHBBB", self.average_window_duration_ms, self.suppression_ms, self.latency_ms,
                           self.detection_threshold, self.minimum_count, len(self.thresholds)) + bytes(self.thresholds)

    @classmethod
    def parse(cls, r: _Reader) -> "SetParams":
        w, s, lat, th, mc, n = r.take("<HHHBBB")
        return cls(w, s, lat, th, mc, tuple(r.raw(n)))


@dataclass(frozen=True)
class SetMode(FixedMessage):
    TYPE: ClassVar[int] = 0x22
    FORMAT: ClassVar[str] = "<BB"
    mode: int = Mode.DETECT
    scores_every: int = 0


@dataclass(frozen=True)
class Ack(FixedMessage):
    TYPE: ClassVar[int] = 0x23
    FORMAT: ClassVar[str] = "<BHB"
    acked_type: int = 0
    acked_seq: int = 0
    status: int = Status.OK


@dataclass(frozen=True)
class ModelBegin(FixedMessage):
    TYPE: ClassVar[int] = 0x30
    FORMAT: ClassVar[str] = "<II"
    size: int = 0
    crc32: int = 0


@dataclass(frozen=True)
class ModelChunk(Message):
    TYPE: ClassVar[int] = 0x31
    offset: int = 0
    data: bytes = b""

    def payload(self) -> bytes:
        return struct.pack("<I", self.offset) + self.data

    @classmethod
    def parse(cls, r: _Reader) -> "ModelChunk":
        return cls(r.one("<I"), r.rest())


@dataclass(frozen=True)
class ModelEnd(ModelBegin):
    TYPE: ClassVar[int] = 0x32


@dataclass(frozen=True)
class ModelAck(FixedMessage):
    TYPE: ClassVar[int] = 0x33
    FORMAT: ClassVar[str] = "<BBI"
    stage: int = Stage.BEGIN
    status: int = Status.OK
    next_offset: int = 0


@dataclass(frozen=True)
class Log(Message):
    TYPE: ClassVar[int] = 0x40
    level: int = 20
    text: str = ""

    def payload(self) -> bytes:
        return bytes([self.level]) + self.text.encode("utf-8")

    @classmethod
    def parse(cls, r: _Reader) -> "Log":
        return cls(r.one("<B"), r.rest().decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[int] = 0x41
    code: int = ErrorCode.NONE
    ref_type: int = 0
    ref_seq: int = 0
    text: str = ""

    def payload(self) -> bytes:
        return struct.pack("<BBH", self.code, self.ref_type, self.ref_seq) + self.text.encode("utf-8")[:64]

    @classmethod
    def parse(cls, r: _Reader) -> "Error":
        code, t, s = r.take("<BBH")
        return cls(code, t, s, r.rest().decode("utf-8", errors="replace"))


MESSAGE_TYPES: dict[int, Type[Message]] = {
    cls.TYPE: cls for cls in (Hello, GetInfo, Ping, Pong, Audio, DetectionMsg, DetectionAck, Scores, Leds,
                              SetParams, SetMode, Ack, ModelBegin, ModelChunk, ModelEnd, ModelAck, Log, Error)
}


def decode(frame: RawFrame) -> Message:
    """The typed message in a valid frame; `ProtocolError` for unknown types or bad payloads."""
    cls = MESSAGE_TYPES.get(frame.type)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{frame.type:02x}")
    return cls.from_payload(frame.payload)
