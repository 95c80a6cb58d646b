"""Model push end to end: host CLI -> real mosquitto -> real agent processes."""
from __future__ import annotations

from .conftest import FLEET, device_status, run_keywire


def test_push_activates_new_model_and_keeps_previous(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    start_agent(broker, "dev1")
    obs.wait_for(lambda: (device_status(obs, "dev1") or {}).get("online"), what="dev1 online")
    r = run_keywire("push", str(fleet_models.v2), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", "dev1", "--wait", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "active on 1/1 devices" in r.stdout
    st = obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["model"]["version"] == "2" and s,
                      what="status v2")
    assert st["online"] is True
    assert st["previous_model"]["version"] == "1"
    assert st["last_push"]["state"] == "active"
