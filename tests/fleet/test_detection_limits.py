"""Detection settings meant for one model never silence a device running another: a
threshold list of the wrong length is left out (one warning, named in the status), and a
push of a model with another class count ends active with the agent still detecting."""
from __future__ import annotations

import time

from keywire.protocol.messages import Command
from keywire.protocol.topics import FleetTopics
from keywire.training.bundled import model_path

from .conftest import FLEET, device_status, push_to_device, wait_online

T = FleetTopics(FLEET)


def _detections(obs, device: str) -> int:
    return len(obs.json_on(f"/device/{device}/event"))


def test_push_of_a_model_with_fewer_classes_keeps_the_agent_listening(broker, start_agent, observe, fleet_models,
                                                                       keys):
    obs = observe(broker)
    twelve = ",".join(["0"] * 12)
    agent = start_agent(broker, "dev1", model=model_path("speech12"), extra=("--threshold-list", twelve))
    wait_online(obs, "dev1")
    assert "ignored_overrides" not in device_status(obs, "dev1")["detection"]  # 12 values fit 12 classes

    r = push_to_device(broker, keys, fleet_models.v2)  # 4 classes
    assert "active on 1/1" in r.stdout, r.stdout + r.stderr
    obs.wait_for(lambda: (device_status(obs, "dev1")["model"] or {}).get("version") == "2", what="v2 active")
    status = device_status(obs, "dev1")
    assert status["online"]
    assert status["detection"]["ignored_overrides"] == ["detection_threshold_list override has 12 values "
                                                        "for 4 classes"], status
    assert "detection_threshold_list" not in status["detection"]  # --threshold 0 applies instead
    before = _detections(obs, "dev1")
    obs.wait_for(lambda: _detections(obs, "dev1") > before + 2, what="detections after the push")
    time.sleep(1.0)
    assert agent.alive, agent.log()
    # a later setting still applies: the list meant for the other model stays left out, not refused
    obs.publish(T.device("dev1").command, Command("set_detection", "s1", {"suppression_ms": 500}).to_json())
    reply = obs.wait_for(lambda: next((r for r in obs.json_on("/dev1/reply") if r["id"] == "s1"), None),
                         what="reply to s1")
    assert reply["ok"], reply
    obs.wait_for(lambda: device_status(obs, "dev1")["detection"]["suppression_ms"] == 500, what="suppression 500")
    log = agent.log()
    assert log.count("WARNING keywire.detection: detection_threshold_list override has 12 values for 4 classes: "
                     "using the model's own thresholds") == 1, log
