"""The event spool: ordered, durable across restarts, torn tails dropped, bounded."""
from __future__ import annotations

import subprocess
import sys

from keywire.agent.fleet.spool import LOG_NAME, Spool


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
    assert (tmp_path / LOG_NAME).stat().st_size == 0  # compacted once everything was delivered
    s3 = Spool(tmp_path)
    assert s3.append("t/e", b"11").seq == 12


def test_torn_tail_is_dropped(tmp_path):
    s = Spool(tmp_path)
    for i in range(3):
        s.append("t/e", b"x" * 100)
    s.close()
    log = tmp_path / LOG_NAME
    data = log.read_bytes()
    log.write_bytes(data[:-37])  # power cut in the middle of the last record
    s2 = Spool(tmp_path)
    assert len(s2) == 2
    s2.append("t/e", b"after")
    s2.close()
    assert [r.payload for r in Spool(tmp_path).pending()][-1] == b"after"


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
    got = [int(r.payload) for r in Spool(tmp_path).pending()]
    assert got[: len(reported)] == reported
    assert got == list(range(len(got)))
