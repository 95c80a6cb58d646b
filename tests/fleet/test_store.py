"""The device's model store: atomic switch, last-known-good, pending models that keep failing."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import pytest

from keywire.agent.fleet.health import MAX_UNCLEAN_STOPS, RunEnd, RunRecord
from keywire.agent.fleet.store import BootVerdict, ModelStore
from keywire.protocol.errors import FleetError
from keywire.protocol.messages import ModelInfo


def info(data: bytes, version: str) -> ModelInfo:
    return ModelInfo("m", version, hashlib.sha256(data).hexdigest(), ("a", "b"))


def test_install_keeps_previous_and_rollback(tmp_path):
    s = ModelStore(tmp_path)
    a, b, c = b"A" * 1000, b"B" * 2000, b"C" * 3000
    s.adopt(a, info(a, "1"))
    s.install(b, info(b, "2"), issued_at=10.0)
    st = s.state()
    assert st.active.version == "2" and st.previous.version == "1" and st.pending
    s.confirm()
    s.install(c, info(c, "3"), issued_at=20.0)
    assert {p.name for p in s.dir.glob("*.tflite")} == {f"{info(b, '2').sha256}.tflite", f"{info(c, '3').sha256}.tflite",
                                                      "active.tflite"}
    assert s.active_link.read_bytes() == c
    back = s.rollback()
    assert back.version == "2" and s.state().active.version == "2" and s.state().previous is None
    assert info(c, "3").sha256 in s.state().rejected
    assert s.state().issued_at == 20.0
    assert s.active_path().read_bytes() == b and s.active_link.read_bytes() == b


def test_pending_model_that_keeps_failing_is_rolled_back(tmp_path):
    s = ModelStore(tmp_path)
    a, b = b"A" * 10, b"B" * 10
    s.adopt(a, info(a, "1"))
    s.install(b, info(b, "2"), issued_at=1.0)
    assert not s.note_boot(RunEnd.FAULT, "SIGSEGV").rolled_back   # first crash of the new model
    assert s.state().active.version == "2" and s.state().faults == 1
    v = s.note_boot(RunEnd.FAULT, "SIGSEGV")                      # it crashed again: back to last-known-good
    assert v.rolled_back and v.blacklisted
    assert s.state().active.version == "1" and not s.state().pending
    assert info(b, "2").sha256 in s.state().rejected


def test_power_cuts_do_not_blacklist_a_pending_model(tmp_path):
    """Unclean stops (kill -9, power loss) say nothing about the model: never blacklisted; after
    MAX_UNCLEAN_STOPS the device goes back to the previous model but may retry the new one."""
    s = ModelStore(tmp_path)
    a, b = b"A" * 10, b"B" * 10
    s.adopt(a, info(a, "1"))
    s.install(b, info(b, "2"), issued_at=1.0)
    for _ in range(MAX_UNCLEAN_STOPS - 1):
        assert s.note_boot(RunEnd.UNCLEAN, "killed") == BootVerdict(reason="killed")
        assert s.state().active.version == "2" and s.state().pending
    assert s.note_boot(RunEnd.CLEAN) == BootVerdict()             # a clean restart is not counted
    v = s.note_boot(RunEnd.UNCLEAN, "killed")
    assert v.rolled_back and not v.blacklisted
    st = s.state()
    assert st.active.version == "1" and st.rejected == () and st.deferred == (info(b, "2").sha256,)
    s.install(b, info(b, "2"), issued_at=2.0)                     # pushed again: installs, no longer deferred
    assert s.state().active.version == "2" and s.state().deferred == ()
    s.confirm()
    assert s.state().unclean == 0 and s.state().faults == 0


def test_run_record_tells_the_cause(tmp_path):
    r = RunRecord(tmp_path)
    sha = "ab" * 32
    assert r.previous_end(sha)[0] is RunEnd.NONE
    r.began(sha)
    assert r.previous_end(sha)[0] is RunEnd.UNCLEAN                # no word: killed or power lost
    (tmp_path / "fault.log").write_text("Fatal Python error: Segmentation fault\n")
    end, why = r.previous_end(sha)
    assert end is RunEnd.FAULT and "Segmentation fault" in why
    r.ended(sha)
    assert r.previous_end(sha)[0] is RunEnd.CLEAN
    r.ended(sha, failure="ParamsError: bad")
    assert r.previous_end(sha) == (RunEnd.FAULT, "the model's run failed: ParamsError: bad")
    assert r.previous_end("cd" * 32)[0] is RunEnd.NONE            # a record of another model


def test_a_digest_is_a_file_name_only_after_validation(tmp_path):
    s = ModelStore(tmp_path)
    for bad in ("../" * 20 + "x" * 4, "/tmp/" + "a" * 59, "A" * 64, "g" * 64, "a" * 63):
        with pytest.raises(FleetError):
            s.path_of(bad)
        assert not s.verify_file(bad)
    with pytest.raises(FleetError):
        s.reject("../../../etc")
    (s.dir / "current.json").write_text('{"active": {"name": "m", "version": "1", "sha256": "../../x"}}')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert s.state().active is None                                # a tampered state names no path
    assert s.sync_active_link() is None and s.active_path() is None
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_corrupt_active_file_falls_back_to_previous(tmp_path):
    s = ModelStore(tmp_path)
    a, b = b"A" * 10, b"B" * 10
    s.adopt(a, info(a, "1"))
    s.install(b, info(b, "2"), issued_at=1.0)
    s.path_of(info(b, "2").sha256).write_bytes(b"BB")
    assert s.active_path().read_bytes() == a


_INSTALLER = r"""
import hashlib, sys, itertools
from pathlib import Path
from keywire.agent.fleet.store import ModelStore
from keywire.protocol.messages import ModelInfo
s = ModelStore(Path(sys.argv[1]))
models = [bytes([65 + i]) * (300_000 + i) for i in range(4)]
if s.state().active is None:
    s.adopt(models[0], ModelInfo("m", "0", hashlib.sha256(models[0]).hexdigest()))
print("ready", flush=True)
for n in itertools.count(1):
    d = models[n % 4]
    s.install(d, ModelInfo("m", str(n % 4), hashlib.sha256(d).hexdigest()), issued_at=float(n))
    s.confirm()
"""


def test_kill_during_install_leaves_old_or_new_model_never_partial(tmp_path):
    """SIGKILL an installer at arbitrary moments; the store always names a complete model."""
    for k in range(8):
        p = subprocess.Popen([sys.executable, "-c", _INSTALLER, str(tmp_path)], stdout=subprocess.PIPE)
        assert p.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.037 * k)
        p.kill()
        p.wait()
        s = ModelStore(tmp_path)
        st = s.state()
        assert st.active is not None
        assert s.verify_file(st.active.sha256), f"kill {k}: active model file incomplete"
        path = s.active_path()
        assert path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == st.active.sha256
