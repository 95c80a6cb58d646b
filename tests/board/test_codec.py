"""The agent's Python codec and the firmware's C codec agree byte for byte, resynchronise after
garbage and reject corrupt frames; every message type survives its wire form."""
from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

from keywire.agent.board import frame as fr
from keywire.agent.board import messages as m
from keywire.agent.board.ccore import CDecoder, c_crc32, c_encode_frame


def _payloads(rng: random.Random) -> list[bytes]:
    out = [b"", b"\x00", b"\x00" * 300, bytes(range(1, 256)) * 2, bytes([7]) * 254, bytes([7]) * 253,
           bytes([7]) * 255, bytes(fr.MAX_PAYLOAD)]
    for _ in range(200):
        n = rng.randint(0, fr.MAX_PAYLOAD)
        zero_heavy = rng.random() < 0.3
        out.append(bytes(0 if zero_heavy and rng.random() < 0.5 else rng.randint(0, 255) for _ in range(n)))
    return out


def test_crc32_is_zlib_crc32():
    for data in (b"", b"123456789", bytes(range(256)) * 5):
        assert c_crc32(data) == zlib.crc32(data)


def test_python_and_c_frames_are_identical_and_decode_both_ways():
    rng = random.Random(1)
    cdec, pdec = CDecoder(), fr.FrameDecoder()
    for i, payload in enumerate(_payloads(rng)):
        t, seq = rng.randint(0, 255), rng.randint(0, 65535)
        wire = fr.encode_frame(t, seq, payload)
        assert wire == c_encode_frame(t, seq, payload), f"payload {i} ({len(payload)} bytes)"
        assert wire.count(0) == 1 and wire[-1] == 0
        assert len(wire) <= fr.MAX_ENCODED + 1
        assert fr.cobs_decode(wire[:-1]) is not None
        (got,) = list(pdec.feed(wire))
        assert (got.type, got.seq, got.payload, got.error) == (t, seq, payload, None)
        assert cdec.feed(wire) == [(CDecoder.FRAME, t, seq, payload)]
    with pytest.raises(ValueError):
        fr.encode_frame(1, 0, bytes(fr.MAX_PAYLOAD + 1))


def test_garbage_bit_flips_and_oversize_cost_only_the_hit_frames():
    """A noisy stream: both decoders accept exactly the intact frames and nothing else."""
    rng = random.Random(5)
    nprng = np.random.default_rng(5)
    stream = bytearray()
    sent = []
    for k in range(300):
        payload = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 200)))
        wire = bytearray(fr.encode_frame(m.DetectionMsg.TYPE, k, payload))
        intact = True
        if k % 5 == 1:  # bit flips, as on a noisy line
            for _ in range(rng.randint(1, 3)):
                wire[rng.randrange(len(wire) - 1)] ^= 1 << rng.randrange(8)
            intact = wire.count(0) == 1 and wire[-1] == 0 and fr.encode_frame(m.DetectionMsg.TYPE, k, payload) == wire
        if k % 7 == 3:  # garbage with its own delimiter before the frame
            stream += bytes(nprng.integers(0, 256, rng.randint(1, 40), dtype=np.uint8)) + b"\x00"
        if k % 50 == 10:  # an overlong run with no delimiter: dropped as oversize
            stream += bytes([0x55]) * (fr.MAX_ENCODED + 100) + b"\x00"
        stream += wire
        if intact:
            sent.append((k, payload))
    py = [(f.seq, f.payload) for f in fr.FrameDecoder().feed(bytes(stream)) if f.error is None]
    c = [(seq, p) for r, _t, seq, p in CDecoder().feed(bytes(stream)) if r == CDecoder.FRAME]
    assert py == c
    # every intact frame arrives; a corrupted one is never accepted with wrong content
    payload_of = dict(sent)
    assert set(payload_of) <= {s for s, _ in py}
    assert all(payload_of.get(s, p) == p for s, p in py)
    dec = fr.FrameDecoder()
    list(dec.feed(bytes(stream)))
    assert dec.stats.oversize == 6 and dec.stats.bad_crc > 0


def test_wrong_version_is_reported_with_its_header():
    raw = bytes([2, m.Ping.TYPE, 9, 0]) + b"\x01\x02\x03\x04"
    wire = fr.cobs_encode(raw + zlib.crc32(raw).to_bytes(4, "little")) + b"\x00"
    (f,) = list(fr.FrameDecoder().feed(wire))
    assert f.error is fr.RxError.BAD_VERSION and f.type == m.Ping.TYPE and f.seq == 9
    assert CDecoder().feed(wire)[0][:3] == (CDecoder.BAD_VERSION, m.Ping.TYPE, 9)


SAMPLES = np.arange(-160, 160, dtype="<i2").tobytes()

MESSAGES = [
    m.Hello(1, (0, 1, 2), 0x1F, 0xDEADBEEF, 512 * 1024, 16000, m.Mode.STREAM, "brd2601-42", "on_off", 12345, 0xC0FFEE),
    m.GetInfo(), m.Ping(7), m.Pong(0xFFFFFFFF, 0xB007), m.Audio(41, SAMPLES),
    m.DetectionMsg(0xB007, 3, 123456, 1, 201, "off"), m.DetectionAck(3), m.Scores(99, (1, 2, 250)),
    m.Leds(True, False), m.SetParams(1000, 1500, 100, 185, 3, (200, 210, 255)), m.SetMode(m.Mode.DETECT, 5),
    m.Ack(0x21, 65535, m.Status.BAD_PARAMS), m.ModelBegin(10000, 0x12345678), m.ModelChunk(1016, b"\x00\x01" * 500),
    m.ModelEnd(10000, 0x12345678), m.ModelAck(m.Stage.CHUNK, m.Status.OK, 2032), m.Log(30, "low battery"),
    m.Error(m.ErrorCode.UNKNOWN_TYPE, 0x77, 12, "unknown message type"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda x: type(x).__name__)
def test_every_message_round_trips(msg):
    wire = msg.to_frame(seq=77)
    (raw,) = list(fr.FrameDecoder().feed(wire))
    assert raw.seq == 77
    assert m.decode(raw) == msg
    assert type(msg).from_frame(raw) == msg


def test_bad_payloads_are_protocol_errors():
    good = m.DetectionMsg(9, 1, 2, 0, 200, "yes").payload()
    for payload in (good[:-1], good + b"x", b""):
        with pytest.raises(m.ProtocolError):
            m.DetectionMsg.from_payload(payload)
    with pytest.raises(m.ProtocolError, match="unknown message type 0x77"):
        m.decode(fr.RawFrame(1, 0x77, 0, b""))
