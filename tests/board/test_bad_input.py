"""Bad input on either side of the serial link: unknown types, wrong protocol version,
oversize frames, malformed payloads and a model too large for the board are counted,
logged and answered with ERROR frames; neither side crashes or stalls."""
from __future__ import annotations

import os
import time
import tty
import zlib

import serial

from keywire.agent.board import frame as fr
from keywire.agent.board import messages as m
from keywire.agent.board.link import BoardLink, BoardSpec, LinkSettings, LinkState

from .conftest import wait_for


def _raw_frame(version: int, msg_type: int, seq: int, payload: bytes) -> bytes:
    raw = bytes([version, msg_type, seq & 0xFF, seq >> 8]) + payload
    return fr.cobs_encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00"


def _answers(port: serial.Serial, dec: fr.FrameDecoder, want: int, timeout: float = 3.0) -> list[m.Message]:
    """Messages (other than HELLO/LED/PONG chatter) read until `want` arrived."""
    out: list[m.Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for raw in dec.feed(port.read(4096)):
            if raw.error is None:
                msg = m.decode(raw)
                if not isinstance(msg, (m.Hello, m.Leds, m.Pong)):
                    out.append(msg)
    return out


def test_board_answers_bad_frames_with_errors_and_keeps_working(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--flash-kb", "32", "--loop")
    port = serial.Serial(emu.port, 921600, timeout=0.05)
    dec = fr.FrameDecoder()
    try:
        port.write(_raw_frame(1, 0x77, 5, b"abc"))
        port.write(_raw_frame(9, m.Ping.TYPE, 6, b"\x01\x02\x03\x04"))
        port.write(b"\x55" * 3000 + b"\x00")
        port.write(_raw_frame(1, m.SetParams.TYPE, 7, b"\x01\x02"))
        port.write(m.ModelBegin(200 * 1024, 0x1234).to_frame(8))
        port.write(bytes(range(1, 200)))  # line noise without a delimiter, then a good frame
        port.write(m.Ping(0xC0DE).to_frame(9))
        got = _answers(port, dec, 7)
        errors = [(g.code, g.ref_type) for g in got if isinstance(g, m.Error)]
        assert (m.ErrorCode.UNKNOWN_TYPE, 0x77) in errors
        assert (m.ErrorCode.BAD_VERSION, m.Ping.TYPE) in errors
        assert (m.ErrorCode.OVERSIZE, 0) in errors
        assert (m.ErrorCode.BAD_PARAMS, m.SetParams.TYPE) in errors
        assert (m.ErrorCode.MODEL_TOO_LARGE, m.ModelBegin.TYPE) in errors
        assert m.Ack(m.SetParams.TYPE, 7, m.Status.BAD_PARAMS) in got
        assert m.ModelAck(m.Stage.BEGIN, m.Status.TOO_LARGE, 0) in got
        # not stalled: a ping after all that is answered
        port.write(m.Ping(0xBEEF).to_frame(10))
        deadline = time.monotonic() + 2
        pongs = []
        while not pongs and time.monotonic() < deadline:
            pongs = [p for raw in dec.feed(port.read(4096)) if raw.error is None
                     for p in [m.decode(raw)] if isinstance(p, m.Pong) and p.token == 0xBEEF]
        assert pongs
    finally:
        port.close()
        emu.stop()
    assert emu.proc.returncode in (0, -15)


def test_agent_link_counts_and_answers_bad_board_frames():
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    got: list = []
    link = BoardLink(BoardSpec(os.ttyname(slave)), LinkSettings(request_retries=1),
                     on_detection=lambda d, h: got.append(d)).start()
    dec = fr.FrameDecoder()
    inbox: list[m.Message] = []

    hello = m.Hello(1, (0, 1, 0), 0x1F, 0xABCD, 1024, 16000, m.Mode.DETECT, "fake-board", "x", 1, 2)

    def pump() -> None:
        """Play the board's side of the conversation: answer GET_INFO and SET_MODE."""
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        for raw in dec.feed(data):
            if raw.error is None:
                msg = m.decode(raw)
                inbox.append(msg)
                if isinstance(msg, m.GetInfo):
                    os.write(master, hello.to_frame(0))
                elif isinstance(msg, m.SetMode):
                    os.write(master, m.Ack(msg.TYPE, raw.seq, m.Status.OK).to_frame(0))

    try:
        assert wait_for(lambda: (pump(), link.state is LinkState.CONNECTED)[1], 3)
        os.write(master, _raw_frame(1, 0x66, 1, b""))
        os.write(master, _raw_frame(3, m.Hello.TYPE, 2, b""))
        os.write(master, b"\x41" * 5000 + b"\x00")
        os.write(master, _raw_frame(1, m.DetectionMsg.TYPE, 3, b"\x01\x02"))
        os.write(master, m.DetectionMsg(0xABCD, 1, 100, 0, 220, "yes").to_frame(4))
        assert wait_for(lambda: (pump(), len(got) == 1)[1], 3)
        assert wait_for(lambda: (pump(), sum(isinstance(x, m.Error) for x in inbox) >= 3)[1], 3)
        errors = {(x.code, x.ref_type) for x in inbox if isinstance(x, m.Error)}
        assert {(m.ErrorCode.UNKNOWN_TYPE, 0x66), (m.ErrorCode.BAD_VERSION, m.Hello.TYPE),
                (m.ErrorCode.BAD_LENGTH, m.DetectionMsg.TYPE)} <= errors
        s = link.stats
        assert (s.protocol_errors, s.bad_version, s.oversize) == (2, 1, 1)
        assert m.DetectionAck(1) in inbox and got[0].label == "yes"
        assert link.state is LinkState.CONNECTED
    finally:
        link.close()
        os.close(master)
        os.close(slave)
