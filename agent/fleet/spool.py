"""An append-only on-disk queue of outgoing messages (detections), delivered in order.

Every detection is appended and fsynced before it is sent, so nothing is lost while the broker
is unreachable, nor across an agent restart or power cut. The sender acknowledges by sequence
number once the broker confirmed (QoS 1 PUBACK); the acknowledged position is kept in a small
file replaced atomically. After a restart, records sent but not yet acknowledged are sent
again: duplicates carry the same event id.

The log is self-delimiting so that damage stays local. File layout (version 2):

    header  b"KWSPOOL" + u8 version
    record  b"\\xd7KWr" (sync marker) + <u32 body length> + <u32 crc32(length bytes + body)> + body
    body    <u64 seq><u16 topic length> topic payload

A record whose checksum fails (a flipped byte, a bad sector) is skipped and counted
(`corrupt`); reading resumes at the next marker that starts a valid record, so every later
record is kept. A record cut short at the end of the file (a crash mid-write) is dropped. After
such a repair the file is rewritten atomically with the good undelivered records only.
Version-1 files (the same records without header and marker) are migrated at start; a file of
another version whose records do not read as version 2 is set aside (renamed, never deleted)
and the spool starts empty.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Optional

from .atomic import fsync_dir, write_atomic

log = logging.getLogger("keywire.fleet.spool")

VERSION = 2
_MAGIC = b"KWSPOOL"
_FILE_HEAD = _MAGIC + bytes([VERSION])
_MARK = b"\xd7KWr"
_HEAD = struct.Struct("<4sII")      # marker, body length, crc32(length + body)
_LEN = struct.Struct("<I")
_BODY = struct.Struct("<QH")        # seq, topic length
_V1_HEAD = struct.Struct("<II")     # version 1: body length, crc32(body)
_MAX_BODY = 16 * 1024 * 1024        # no real record comes near this; larger lengths are damage
LOG_NAME, ACK_NAME = "events.log", "acked"


@dataclass(frozen=True)
class Record:
    seq: int
    topic: str
    payload: bytes

    def body(self) -> bytes:
        t = self.topic.encode("utf-8")
        return _BODY.pack(self.seq, len(t)) + t + self.payload

    def encode(self) -> bytes:
        body = self.body()
        length = _LEN.pack(len(body))
        return _MARK + length + _LEN.pack(zlib.crc32(length + body)) + body


def _decode_body(body: bytes) -> Optional[Record]:
    if len(body) < _BODY.size:
        return None
    seq, tlen = _BODY.unpack_from(body)
    if _BODY.size + tlen > len(body):
        return None
    topic = body[_BODY.size:_BODY.size + tlen].decode("utf-8", "replace")
    return Record(seq, topic, bytes(body[_BODY.size + tlen:]))


def _record_at(data: bytes, pos: int) -> tuple[Optional[Record], int]:
    """The valid version-2 record starting at `pos` and where it ends, or (None, pos)."""
    if len(data) - pos < _HEAD.size:
        return None, pos
    mark, length, crc = _HEAD.unpack_from(data, pos)
    end = pos + _HEAD.size + length
    if mark != _MARK or length > _MAX_BODY or end > len(data):
        return None, pos
    body = data[pos + _HEAD.size:end]
    if zlib.crc32(body, zlib.crc32(data[pos + 4:pos + 8])) != crc:
        return None, pos
    rec = _decode_body(body)
    return (rec, end) if rec is not None else (None, pos)


def _is_torn(data: bytes, pos: int) -> bool:
    """Does the rest of the file look like one record whose writing was cut short?"""
    tail = data[pos:]
    if len(tail) < _HEAD.size:
        return _MARK.startswith(tail[:4])
    mark, length, _ = _HEAD.unpack_from(tail)
    return mark == _MARK and length <= _MAX_BODY and _HEAD.size + length > len(tail)


@dataclass
class _Scan:
    records: list[Record]
    corrupt: int = 0     # damaged records skipped
    torn: int = 0        # bytes of a cut-short last record


def _scan_v2(data: bytes, pos: int) -> _Scan:
    """Every valid record from `pos`, resynchronising on the marker after damage."""
    scan = _Scan([])
    while pos < len(data):
        rec, end = _record_at(data, pos)
        if rec is not None:
            scan.records.append(rec)
            pos = end
            continue
        nxt = data.find(_MARK, pos + 1)
        while nxt != -1 and _record_at(data, nxt)[0] is None:
            nxt = data.find(_MARK, nxt + 1)
        if nxt == -1:
            if _is_torn(data, pos):
                scan.torn = len(data) - pos
            else:
                scan.corrupt += max(1, data.count(_MARK, pos))
            break
        scan.corrupt += max(1, data.count(_MARK, pos, nxt))
        pos = nxt
    return scan


def _scan_v1(data: bytes) -> _Scan:
    """Version-1 records (no header, no marker): in order up to the first bad one."""
    scan, pos = _Scan([]), 0
    while pos + _V1_HEAD.size <= len(data):
        length, crc = _V1_HEAD.unpack_from(data, pos)
        body = data[pos + _V1_HEAD.size:pos + _V1_HEAD.size + length]
        rec = _decode_body(body) if len(body) == length and zlib.crc32(body) == crc else None
        if rec is None:
            break
        scan.records.append(rec)
        pos += _V1_HEAD.size + length
    scan.torn = len(data) - pos
    return scan


class Spool:
    """Ordered, durable queue; `append` then `pending`, `ack(seq)` when delivered.

    `dropped` counts records refused (spool full, write failed), `corrupt` damaged records
    skipped when the log was read back.
    """

    def __init__(self, directory: Path, max_bytes: int = 64 * 1024 * 1024, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.dropped = 0
        self.corrupt = 0
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
            return max(0, int(self._ack_path.read_text().strip() or 0))
        except (OSError, ValueError, UnicodeDecodeError):
            return 0

    def _load(self) -> None:
        try:
            data = self._log_path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) <= len(_FILE_HEAD) and _FILE_HEAD.startswith(data):
            self._rewrite([])  # new, or cut while its header was written
            return
        rewrite = True
        if data.startswith(_MAGIC):
            scan = _scan_v2(data, len(_FILE_HEAD))
            if data[len(_MAGIC)] != VERSION:
                if not scan.records:
                    self._set_aside(f"v{data[len(_MAGIC)]}", f"written in spool format {data[len(_MAGIC)]}")
                    return
                scan.corrupt += 1  # a damaged version byte: the records read as this format
            rewrite = bool(scan.corrupt or scan.torn)
        else:
            scan = _scan_v1(data)
            if scan.records and not scan.torn:
                log.info("event spool %s: migrated %d record(s) from format 1", self._log_path, len(scan.records))
            else:
                # Not version 1 throughout: a version-2 log whose header was damaged keeps its records.
                v2 = _scan_v2(data, 0)
                if len(v2.records) > len(scan.records):
                    scan = v2  # the damaged header counts as one skipped stretch
                elif not scan.records:
                    self._set_aside("unreadable", "not a keywire event spool")
                    return
        for rec in scan.records:
            self._next_seq = max(self._next_seq, rec.seq + 1)
            if rec.seq > self._acked:
                self._pending.append(rec)
        if scan.corrupt:
            self.corrupt += scan.corrupt
            log.warning("event spool %s: skipped %d damaged record(s) (checksum), kept %d",
                        self._log_path, scan.corrupt, len(scan.records))
        if scan.torn:
            log.info("event spool %s: dropped a record cut short at the end (%d bytes)", self._log_path, scan.torn)
        if rewrite:
            self._rewrite(list(self._pending))
        else:
            self._size = len(data)

    def _set_aside(self, suffix: str, why: str) -> None:
        aside = self._log_path.with_name(f"{LOG_NAME}.{suffix}")
        os.replace(self._log_path, aside)
        self.corrupt += 1
        log.error("event spool %s is %s: moved to %s, starting an empty spool", self._log_path, why, aside.name)
        self._rewrite([])

    def _rewrite(self, records: list[Record]) -> None:
        blob = _FILE_HEAD + b"".join(r.encode() for r in records)
        write_atomic(self._log_path, blob)
        self._size = len(blob)

    # ------------------------------------------------------------ API
    def append(self, topic: str, payload: bytes) -> Optional[Record]:
        """Durably queue one message; None (and `dropped` += 1) when full or the write failed."""
        with self._lock:
            rec = Record(self._next_seq, topic, bytes(payload))
            blob = rec.encode()
            if self._size + len(blob) > self.max_bytes:
                self._compact_locked()
                if self._size + len(blob) > self.max_bytes:
                    self.dropped += 1
                    return None
            try:
                self._log.write(blob)
                self._log.flush()
                if self.fsync:
                    os.fsync(self._log.fileno())
            except OSError as exc:
                self.dropped += 1
                log.error("event spool %s: write failed (%s)", self._log_path, exc.strerror or exc)
                self._reopen_after_failed_write()
                return None
            self._next_seq += 1
            self._size += len(blob)
            self._pending.append(rec)
            return rec

    def _reopen_after_failed_write(self) -> None:
        """Cut a partly written record off again (best effort: the reader skips it anyway)."""
        try:
            self._log.close()
        except OSError:
            pass
        try:
            with open(self._log_path, "r+b") as f:
                f.truncate(self._size)
        except OSError:
            pass
        self._log = open(self._log_path, "ab")

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
        size = len(_FILE_HEAD) + sum(_HEAD.size + len(r.body()) for r in self._pending)
        if size == self._size:
            return
        self._log.close()
        self._rewrite(list(self._pending))
        self._log = open(self._log_path, "ab")

    def close(self) -> None:
        with self._lock:
            if not self._log.closed:
                self._log.close()
        fsync_dir(self.directory)
