"""Model push end to end: host CLI -> real mosquitto -> real agent processes."""
from __future__ import annotations

import signal
import time

from keywire.agent.fleet.store import ModelStore
from keywire.protocol.messages import Command

from .conftest import FLEET, device_status, push_to_device, wait_online


def test_push_activates_new_model_and_keeps_previous(broker, start_agent, observe, fleet_models, keys, tmp_path):
    obs = observe(broker)
    agent = start_agent(broker, "dev1")
    wait_online(obs, "dev1")
    r = push_to_device(broker, keys, fleet_models.v2)
    assert "active on 1/1 devices" in r.stdout
    st = obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["model"]["version"] == "2" and s,
                      what="status v2")
    assert st["online"] is True
    assert st["previous_model"]["version"] == "1"
    assert st["last_push"]["state"] == "active"
    # a reload (SIGHUP) keeps the pushed model: the agent runs <state>/models/active.tflite
    agent.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    obs.publish(f"keywire/{FLEET}/device/dev1/cmd", Command("status", "s1").to_json())
    obs.wait_for(lambda: any(r["id"] == "s1" for r in obs.json_on("/dev1/reply")), what="reply")
    assert device_status(obs, "dev1")["model"]["version"] == "2"
    assert "reloaded configuration" in agent.log()
    assert (tmp_path / "state-dev1" / "models" / "active.tflite").read_bytes() == fleet_models.v2.read_bytes()
    agent.stop()
    agent = start_agent(broker, "dev1")            # and so does a restart
    obs.wait_for(lambda: [e for e in agent.detections() if e["model_version"] == "2"], what="v2 after restart")


def test_last_will_names_the_model_the_device_ran_when_it_died(broker, start_agent, observe, fleet_models, keys):
    """The broker's copy of the last will is renewed when the model changes: a device killed
    after a push shows offline with the pushed model, not the one it connected with."""
    obs = observe(broker)
    agent = start_agent(broker, "dev1")
    wait_online(obs, "dev1")
    push_to_device(broker, keys, fleet_models.v2)
    obs.wait_for(lambda: "renew the last will" in agent.log(), what="will renewed")
    obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["online"] and s["model"]["version"] == "2",
                 what="online with v2 after the reconnect")
    agent.kill()                                   # no clean shutdown: the broker sends the will
    st = obs.wait_for(lambda: (s := device_status(obs, "dev1")) and not s["online"] and s, what="will")
    assert st["model"]["version"] == "2"
    assert st["previous_model"]["version"] == "1"


def test_a_threshold_list_for_another_class_count_does_not_stop_a_push(broker, start_agent, observe, fleet_models,
                                                                       keys, tmp_path):
    """The device runs with a 4-value threshold list; a 3-class model is pushed: it becomes
    active (the list is left out for it and named), the agent keeps running, and a restart with
    the same settings neither fails nor rolls back."""
    obs = observe(broker)
    state = tmp_path / "state"
    extra = ("--threshold-list", "0,0,0,0")
    agent = start_agent(broker, "dev1", extra=extra, state_dir=state)
    wait_online(obs, "dev1")
    r = push_to_device(broker, keys, fleet_models.three_classes)
    assert "active on 1/1 devices" in r.stdout
    st = obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["model"]["version"] == "3c" and s,
                      what="status 3c")
    assert "4 values for 3 classes" in st["last_push"]["reason"]
    assert any("4 values for 3 classes" in x for x in st["detection"]["ignored_overrides"])
    obs.wait_for(lambda: [e for e in agent.detections() if e["model_version"] == "3c"], what="3c detecting")
    assert agent.alive
    agent.stop()
    obs.messages.clear()
    agent = start_agent(broker, "dev1", extra=extra, state_dir=state)
    obs.wait_for(lambda: [e for e in agent.detections() if e["model_version"] == "3c"], what="3c after restart")
    obs.wait_for(lambda: not ModelStore(state).state().pending, timeout=30, what="3c confirmed")
    assert agent.alive and ModelStore(state).state().rejected == ()
