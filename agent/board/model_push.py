"""Sending a model to a board over the serial link (firmware/PROTOCOL.md, "Model transfer").

BEGIN with size and CRC-32, CHUNKs at offsets the board acknowledges (it names the offset to
resume from after a lost or repeated chunk), END; the board then restarts its pipeline with
the new model and says so in a fresh HELLO. Any refused or unanswered step ends the transfer
with a `BoardError` naming the step; the board keeps its old model then.
"""
from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Callable, Optional

from . import messages as m

if TYPE_CHECKING:
    from .link import BoardLink


def push_model(link: "BoardLink", data: bytes, chunk_size: int = 1016, timeout_s: float = 0.5,
               retries: int = 8) -> m.Hello:
    """Transfer `data` into the board's staging area and activate it; the board's HELLO naming
    the new model. The caller holds the link's model lock (one transfer at a time)."""
    crc = zlib.crc32(data)
    size = len(data)
    chunk_size = max(1, min(chunk_size, m.MAX_CHUNK))
    if not link.wait_connected(5.0):
        raise m.BoardError(f"board {link.spec.port} is not connected")
    ack = link.request(m.ModelBegin(size, crc), _model_ack(m.Stage.BEGIN), timeout_s, retries)
    _check_model_ack(link, ack, "begin", size)
    offset = 0
    budget = 2 * (size // chunk_size + 1) + retries  # BAD_OFFSET resumes allowed
    while offset < size:
        budget -= 1
        if budget < 0:
            raise m.BoardError("model transfer: the board keeps asking for other offsets")
        piece = data[offset:offset + chunk_size]
        ack = link.request(m.ModelChunk(offset, piece), _chunk_ack(offset + len(piece)), timeout_s, retries)
        if isinstance(ack, m.ModelAck) and ack.status == m.Status.BAD_OFFSET and ack.next_offset <= size:
            offset = ack.next_offset  # the board tells where to resume
            continue
        _check_model_ack(link, ack, f"chunk at {offset}", size)
        assert isinstance(ack, m.ModelAck)
        offset = ack.next_offset
    before = link.hello
    ack = link.request(m.ModelEnd(size, crc), _model_ack(m.Stage.END), timeout_s, retries)
    _check_model_ack(link, ack, "end", size)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        h = link.hello
        if h is not None and h is not before and h.model_crc32 == crc and h.model_size == size:
            return h
        info = link.request(m.GetInfo(), lambda a, _s: isinstance(a, m.Hello), timeout_s, 2)
        if isinstance(info, m.Hello) and info.model_crc32 == crc:
            return info
    raise m.BoardError("board acknowledged the model but does not report it as active")


def _check_model_ack(link: "BoardLink", ack: Optional[m.Message], step: str, size: int) -> None:
    if ack is None:
        raise m.BoardError(f"model transfer: no answer from the board at {step}")
    assert isinstance(ack, m.ModelAck)
    if ack.status == m.Status.TOO_LARGE:
        cap = link.hello.flash_capacity if link.hello else 0
        raise m.BoardError(f"model of {size} bytes does not fit the board's staging area ({cap} bytes)")
    if ack.status != m.Status.OK:
        raise m.BoardError(f"model transfer failed at {step}: {m.Status(ack.status).name}")


def _model_ack(stage: m.Stage) -> Callable[[m.Message, set], bool]:
    return lambda a, _s: isinstance(a, m.ModelAck) and a.stage == stage


def _chunk_ack(next_offset: int) -> Callable[[m.Message, set], bool]:
    return lambda a, _s: (isinstance(a, m.ModelAck) and a.stage == m.Stage.CHUNK
                          and (a.next_offset == next_offset or a.status != m.Status.OK))
