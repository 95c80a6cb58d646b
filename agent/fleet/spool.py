"""An append-only on-disk queue of outgoing messages (detections), delivered in order.

Every detection is appended and fsynced before it is sent, so nothing is lost while the broker
is unreachable, nor across an agent restart or power cut. The sender acknowledges by sequence
number once the broker confirmed (QoS 1 PUBACK); the acknowledged position is kept in a small
file replaced atomically. A record torn by a crash fails its CRC and is dropped with the tail.
After a restart, records sent but not yet acknowledged are sent again: duplicates carry the
same event id.

Record layout: `<u32 body length><u32 crc32(body)>` then body = `<u64 seq><u16 topic length>topic payload`.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Optional

from .atomic import fsync_dir, write_atomic

_HEAD = struct.Struct("<II")
_BODY = struct.Struct("<QH")
LOG_NAME, ACK_NAME = "events.log", "acked"


@dataclass(frozen=True)
class Record:
    seq: int
    topic: str
    payload: bytes

    def encode(self) -> bytes:
        t = self.topic.encode("utf-8")
        body = _BODY.pack(self.seq, len(t)) + t + self.payload
        return _HEAD.pack(len(body), zlib.crc32(body)) + body


class Spool:
    """Ordered, durable queue; `append` then `pending`, `ack(seq)` when delivered."""

    def __init__(self, directory: Path, max_bytes: int = 64 * 1024 * 1024, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.dropped = 0  # records refused because the spool was full
        self._lock = threading.Lock()
        self._log_path = self.directory / LOG_NAME
        self._ack_path = self.directory / ACK_NAME
        self._acked = self._read_ack()
        self._pending: Deque[Record] = deque()
        self._size = 0
        self._next_seq = self._acked + 1
        self._load()
        self._log = open(self._log_path, "ab")

    # ------------------------------------------------------------ recovery
    def _read_ack(self) -> int:
        try:
            return int(self._ack_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _load(self) -> None:
        try:
            data = self._log_path.read_bytes()
        except FileNotFoundError:
            return
        pos, good_end = 0, 0
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size: pos + _HEAD.size + length]
            if len(body) != length or zlib.crc32(body) != crc or length < _BODY.size:
                break  # torn tail from a crash: everything after is dropped
            seq, tlen = _BODY.unpack_from(body)
            topic = body[_BODY.size:_BODY.size + tlen].decode("utf-8", "replace")
            rec = Record(seq, topic, bytes(body[_BODY.size + tlen:]))
            pos += _HEAD.size + length
            good_end = pos
            self._next_seq = max(self._next_seq, seq + 1)
            if seq > self._acked:
                self._pending.append(rec)
        self._size = good_end
        if good_end != len(data):
            with open(self._log_path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())

    # ------------------------------------------------------------ API
    def append(self, topic: str, payload: bytes) -> Optional[Record]:
        """Durably queue one message; None (and `dropped` += 1) when the spool is full."""
        with self._lock:
            rec = Record(self._next_seq, topic, bytes(payload))
            blob = rec.encode()
            if self._size + len(blob) > self.max_bytes:
                self._compact_locked()
                if self._size + len(blob) > self.max_bytes:
                    self.dropped += 1
                    return None
            self._log.write(blob)
            self._log.flush()
            if self.fsync:
                os.fsync(self._log.fileno())
            self._next_seq += 1
            self._size += len(blob)
            self._pending.append(rec)
            return rec

    def pending(self) -> list[Record]:
        """Undelivered records, oldest first."""
        with self._lock:
            return list(self._pending)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def ack(self, seq: int) -> None:
        """Everything up to and including `seq` was delivered."""
        with self._lock:
            if seq <= self._acked:
                return
            while self._pending and self._pending[0].seq <= seq:
                self._pending.popleft()
            self._acked = seq
            write_atomic(self._ack_path, str(seq).encode())
            if not self._pending or self._size > 1024 * 1024:
                self._compact_locked()

    def _compact_locked(self) -> None:
        """Rewrite the log with only undelivered records (atomic replace)."""
        blob = b"".join(r.encode() for r in self._pending)
        if len(blob) == self._size:
            return
        self._log.close()
        write_atomic(self._log_path, blob)
        self._size = len(blob)
        self._log = open(self._log_path, "ab")

    def close(self) -> None:
        with self._lock:
            if not self._log.closed:
                self._log.close()
        fsync_dir(self.directory)
