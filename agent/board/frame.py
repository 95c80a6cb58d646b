"""Wire framing of the board protocol: COBS with a 0x00 delimiter and a CRC-32.

Pure Python (the agent must not need the C library); byte-for-byte the same as the
firmware's `kw_frame.c`, which tests/board checks against the shared library.
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Iterator, Optional

PROTOCOL_VERSION = 1
HEADER_SIZE = 4
CRC_SIZE = 4
MAX_PAYLOAD = 1024
MAX_RAW = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
MAX_ENCODED = MAX_RAW + MAX_RAW // 254 + 2


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data` (no delimiter); a full 254-byte block is followed by a code byte."""
    out = bytearray(b"\x00")
    code_pos = 0
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code = 1
            code_pos = len(out)
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code = 1
                code_pos = len(out)
                out.append(0)
    out[code_pos] = code
    return bytes(out)


def cobs_decode(data: bytes) -> Optional[bytes]:
    """Decode COBS; None when malformed."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            return None
        block = data[i:i + code - 1]
        if 0 in block:
            return None
        out += block
        i += code - 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """A complete wire frame: COBS(header + payload + crc32) + 0x00."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    raw = struct.pack("<BBH", version, msg_type, seq & 0xFFFF) + payload
    raw += struct.pack("<I", zlib.crc32(raw))
    return cobs_encode(raw) + b"\x00"


class RxError(str, enum.Enum):
    """Why a received frame was dropped."""

    BAD_CRC = "bad_crc"
    SHORT = "short"
    OVERSIZE = "oversize"
    BAD_VERSION = "bad_version"


@dataclass(frozen=True)
class RawFrame:
    """A frame that passed COBS and CRC checks (version may still be wrong: see `error`)."""

    version: int
    type: int
    seq: int
    payload: bytes
    error: Optional[RxError] = None


@dataclass
class DecoderStats:
    frames: int = 0
    bad_crc: int = 0
    short: int = 0
    oversize: int = 0
    bad_version: int = 0
    bytes: int = 0


class FrameDecoder:
    """Incremental decoder: `feed(bytes)` yields frames and error markers; resynchronises on 0x00."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> Iterator[RawFrame]:
        """Frames completed by `data` (valid ones have error None; dropped ones carry the reason)."""
        self.stats.bytes += len(data)
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return
            self._append(data[start:end])
            start = end + 1
            frame = self._finish()
            if frame is not None:
                yield frame

    def _append(self, chunk: bytes) -> None:
        if self._overflow or not chunk:
            return
        if len(self._buf) + len(chunk) > MAX_ENCODED:
            self._overflow = True
            self._buf.clear()
            return
        self._buf += chunk

    def _finish(self) -> Optional[RawFrame]:
        if self._overflow:
            self._overflow = False
            self.stats.oversize += 1
            return RawFrame(0, 0, 0, b"", RxError.OVERSIZE)
        if not self._buf:
            return None
        raw = cobs_decode(bytes(self._buf))
        self._buf.clear()
        if raw is None:
            self.stats.bad_crc += 1
            return RawFrame(0, 0, 0, b"", RxError.BAD_CRC)
        if len(raw) < HEADER_SIZE + CRC_SIZE:
            self.stats.short += 1
            return RawFrame(0, 0, 0, b"", RxError.SHORT)
        (crc,) = struct.unpack_from("<I", raw, len(raw) - CRC_SIZE)
        if zlib.crc32(raw[:-CRC_SIZE]) != crc:
            self.stats.bad_crc += 1
            return RawFrame(0, 0, 0, b"", RxError.BAD_CRC)
        version, msg_type, seq = struct.unpack_from("<BBH", raw)
        if version != PROTOCOL_VERSION:
            self.stats.bad_version += 1
            return RawFrame(version, msg_type, seq, b"", RxError.BAD_VERSION)
        self.stats.frames += 1
        return RawFrame(version, msg_type, seq, raw[HEADER_SIZE:-CRC_SIZE])
