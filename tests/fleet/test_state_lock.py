"""Two agents on one state directory: the second exits at once with one line and the
configuration exit code, the first keeps running; a killed agent leaves no stale lock."""
from __future__ import annotations

import time

from .conftest import device_status, wait_online


def test_second_agent_on_a_state_dir_exits_with_one_line(broker, start_agent, observe, tmp_path):
    state = tmp_path / "state"
    obs = observe(broker)
    first = start_agent(broker, "dev1", state_dir=state)
    wait_online(obs, "dev1")
    second = start_agent(broker, "dev2", state_dir=state)
    assert second.proc.wait(60) == 2
    lines = second.log().strip().splitlines()
    assert lines == [f"keywire-agent: error: state dir {state} is in use by another keywire-agent "
                     f"(pid {first.proc.pid})"], lines
    assert device_status(obs, "dev2") is None          # it never connected, nor touched the spool
    time.sleep(1.5)
    assert first.alive and device_status(obs, "dev1")["online"]

    first.kill()                                        # SIGKILL: the kernel drops the lock
    third = start_agent(broker, "dev1", state_dir=state)
    obs.wait_for(lambda: third.alive and (device_status(obs, "dev1") or {}).get("online")
                 and len([s for s in obs.json_on("/device/dev1/status") if s.get("online")]) >= 2,
                 what="a new agent on the killed one's state dir")
    assert third.stop() == 0
