"""The event spool: ordered, durable across restarts, bounded; damage stays local.

A flipped byte skips (and counts) only the record it hits, a torn last record is dropped,
version-1 logs are migrated and logs of an unknown version set aside, never deleted.
"""
from __future__ import annotations

import logging
import struct
import subprocess
import sys
import zlib

import pytest

from keywire.agent.fleet.spool import LOG_NAME, Spool

HEADER = b"KWSPOOL\x02"


def _fill(path, n=10, payload=b"x" * 40):
    s = Spool(path)
    recs = [s.append("t/e", payload + str(i).encode()) for i in range(n)]
    s.close()
    return recs


def _payloads(path):
    s = Spool(path)
    try:
        return [r.payload for r in s.pending()], s.corrupt
    finally:
        s.close()


def test_order_ack_and_restart(tmp_path):
    s = Spool(tmp_path)
    for i in range(10):
        s.append("t/e", f"{i}".encode())
    assert [r.payload for r in s.pending()] == [f"{i}".encode() for i in range(10)]
    s.ack(s.pending()[3].seq)
    s.close()
    s2 = Spool(tmp_path)
    assert [r.payload for r in s2.pending()] == [f"{i}".encode() for i in range(4, 10)]
    rec = s2.append("t/e", b"10")
    assert rec.seq == 11  # numbering continues after a restart
    s2.ack(rec.seq)
    assert len(s2) == 0
    s2.close()
    assert (tmp_path / LOG_NAME).read_bytes() == HEADER  # compacted once everything was delivered
    s3 = Spool(tmp_path)
    assert s3.append("t/e", b"11").seq == 12


def test_torn_tail_is_dropped(tmp_path, caplog):
    _fill(tmp_path, 3, b"x" * 100)
    log = tmp_path / LOG_NAME
    data = log.read_bytes()
    for cut in (1, 37, len(data) // 3 - 5):  # cut inside the body, the header, the marker
        log.write_bytes(data[:-cut])
        with caplog.at_level(logging.WARNING):
            s2 = Spool(tmp_path)
        assert len(s2) == 2 and s2.corrupt == 0
        s2.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a crash is not damage
    s2 = Spool(tmp_path)
    s2.append("t/e", b"after")
    s2.close()
    assert [r.payload for r in Spool(tmp_path).pending()][-1] == b"after"


@pytest.mark.parametrize("where", ["marker", "length", "crc", "seq", "topic", "payload"])
def test_flipped_byte_skips_only_its_record(tmp_path, caplog, where):
    recs = _fill(tmp_path, 10)
    log = tmp_path / LOG_NAME
    data = bytearray(log.read_bytes())
    start = len(HEADER) + len(recs[0].encode())   # record 2 of 10
    offset = {"marker": 1, "length": 5, "crc": 9, "seq": 12, "topic": 22, "payload": 30}[where]
    data[start + offset] ^= 0x40
    log.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="keywire.fleet.spool"):
        s = Spool(tmp_path)
    got = [r.payload for r in s.pending()]
    assert got == [r.payload for r in recs if r.seq != 2]
    assert s.corrupt == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "1 damaged record" in warnings[0]
    s.append("t/e", b"new")
    s.close()
    # The log was repaired: reading it again finds nothing damaged, nothing lost.
    got2, corrupt2 = _payloads(tmp_path)
    assert got2 == got + [b"new"] and corrupt2 == 0


def test_damage_in_several_records_and_an_ack(tmp_path):
    recs = _fill(tmp_path, 10)
    size = len(recs[0].encode())
    log = tmp_path / LOG_NAME
    data = bytearray(log.read_bytes())
    for i in (1, 2, 6):                           # records 2, 3 and 7; 2 and 3 adjacent
        data[len(HEADER) + i * size + 20] ^= 0xFF
    log.write_bytes(bytes(data))
    (tmp_path / "acked").write_text("1")
    got, corrupt = _payloads(tmp_path)
    assert got == [r.payload for r in recs if r.seq not in (1, 2, 3, 7)]
    assert corrupt == 3


def test_damaged_header_keeps_records(tmp_path):
    recs = _fill(tmp_path, 4)
    log = tmp_path / LOG_NAME
    log.write_bytes(b"XX" + log.read_bytes()[2:])
    got, corrupt = _payloads(tmp_path)
    assert got == [r.payload for r in recs] and corrupt == 1
    assert log.read_bytes().startswith(HEADER)


def test_damaged_version_byte_keeps_records(tmp_path):
    recs = _fill(tmp_path, 4)
    log = tmp_path / LOG_NAME
    data = bytearray(log.read_bytes())
    data[7] ^= 0x01                               # b"KWSPOOL\x03": the records still read as format 2
    log.write_bytes(bytes(data))
    got, corrupt = _payloads(tmp_path)
    assert got == [r.payload for r in recs] and corrupt == 1
    assert log.read_bytes().startswith(HEADER) and not list(tmp_path.glob("events.log.*"))


def test_version_1_log_is_migrated(tmp_path):
    def v1(seq, payload):
        body = struct.pack("<QH", seq, 3) + b"t/e" + payload
        return struct.pack("<II", len(body), zlib.crc32(body)) + body
    log = tmp_path / LOG_NAME
    log.write_bytes(b"".join(v1(i, b"old%d" % i) for i in range(1, 6)) + v1(6, b"torn")[:-3])
    (tmp_path / "acked").write_text("2")
    s = Spool(tmp_path)
    assert [r.payload for r in s.pending()] == [b"old3", b"old4", b"old5"] and s.corrupt == 0
    assert s.append("t/e", b"new").seq == 6
    s.close()
    assert log.read_bytes().startswith(HEADER)
    assert _payloads(tmp_path)[0] == [b"old3", b"old4", b"old5", b"new"]


@pytest.mark.parametrize("content,aside", [(b"KWSPOOL\x07future records", "events.log.v7"),
                                           (b"\xff" * 200, "events.log.unreadable")])
def test_unknown_log_is_set_aside_not_deleted(tmp_path, caplog, content, aside):
    (tmp_path / LOG_NAME).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="keywire.fleet.spool"):
        s = Spool(tmp_path)
    assert len(s) == 0 and s.corrupt == 1
    assert s.append("t/e", b"fresh").seq == 1
    s.close()
    assert (tmp_path / aside).read_bytes() == content
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert _payloads(tmp_path)[0] == [b"fresh"]


def test_full_spool_counts_dropped(tmp_path):
    s = Spool(tmp_path, max_bytes=1000)
    n = sum(s.append("t/e", b"y" * 100) is not None for _ in range(20))
    assert 0 < n < 20 and s.dropped == 20 - n
    s.ack(s.pending()[-1].seq)
    assert s.append("t/e", b"y" * 100) is not None  # room again after delivery


def test_killed_writer_loses_nothing_it_returned(tmp_path):
    """A process appending as fast as it can is SIGKILLed; every append it reported survives."""
    script = (
        "import sys; from keywire.agent.fleet.spool import Spool\n"
        f"s = Spool({str(tmp_path)!r})\n"
        "i = 0\n"
        "while True:\n"
        "    s.append('t/e', str(i).encode()); print(i, flush=True); i += 1\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    reported = []
    for line in p.stdout:
        reported.append(int(line))
        if len(reported) >= 200:
            p.kill()
            break
    p.wait()
    s = Spool(tmp_path)
    got = [int(r.payload) for r in s.pending()]
    assert got[: len(reported)] == reported
    assert got == list(range(len(got))) and s.corrupt == 0


def test_agent_delivers_around_a_damaged_record_and_reports_it(broker, start_agent, observe, tmp_path):
    """A real agent starting on a spool with record 2 of 10 damaged publishes the other 9 and
    counts the damaged one in its telemetry."""
    import json

    from .conftest import FLEET, wait_online

    spool_dir = tmp_path / "state" / "spool"
    s = Spool(spool_dir)
    topic = f"keywire/{FLEET}/device/dev1/event"
    ids = [f"{i:032x}" for i in range(1, 11)]
    recs = [s.append(topic, json.dumps({"v": 1, "type": "detection", "event_id": e, "device_id": "dev1",
                                        "keyword": "on", "score": 1, "time_ms": 0}).encode()) for e in ids]
    s.close()
    log = spool_dir / LOG_NAME
    data = bytearray(log.read_bytes())
    data[len(HEADER) + len(recs[0].encode()) + 40] ^= 0x01
    log.write_bytes(bytes(data))
    obs = observe(broker)
    agent = start_agent(broker, "dev1", state_dir=tmp_path / "state", detect_every_ms=60000,
                        extra=("--threshold", "255"))
    wait_online(obs, "dev1")
    got = obs.wait_for(lambda: (lambda e: e if set(ids) - {ids[1]} <= e else None)(
        {d.get("event_id") for d in obs.json_on("/device/dev1/event")}), what="the nine intact events")
    assert ids[1] not in got
    tele = obs.wait_for(lambda: [t for t in obs.json_on("/device/dev1/telemetry") if "spool_corrupt" in t],
                        what="telemetry")
    assert tele[-1]["spool_corrupt"] == 1 and tele[-1]["spool_dropped"] == 0
    assert "skipped 1 damaged record" in agent.log()
