"""A short real-broker fuzz round: a running agent receives hostile payloads on every topic it
subscribes to (commands, its device/group/fleet desired manifests, model chunks) through a
real mosquitto, and keeps running, answering and detecting, with no traceback in its log."""
from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fleet.conftest import FLEET, device_status, wait_online

from .harnesses import HARNESSES, manifest_payload, signing_key

ROUND = 60  # inputs per harness


def test_agent_survives_hostile_payloads_on_every_topic(broker, start_agent, observe, tmp_path):
    pub = tmp_path / "fuzz.pub"  # the harness key is trusted too: hostile fields get past the signature
    pub.write_bytes(signing_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    agent = start_agent(broker, "dev1", mqtt_config={"groups": ["g1"]}, extra=("--trusted-key", str(pub)))
    obs = observe(broker)
    wait_online(obs, "dev1")
    base = f"keywire/{FLEET}"
    desired = {"device": f"{base}/device/dev1/desired", "group": f"{base}/group/g1/desired",
               "all": f"{base}/all/desired"}
    sent = {"command": 0, "manifest": 0, "chunk": 0}

    def send(topic: str, payload: bytes, retain: bool = False) -> None:
        if any(c in "+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in topic):
            return  # not a topic a client may publish to (the broker drops such a client)
        obs.publish(topic, payload, retain=retain)

    @settings(derandomize=True, max_examples=ROUND, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def barrage(data) -> None:
        send(f"{base}/device/dev1/cmd", data.draw(HARNESSES["mqtt_command"].strategy()))
        sent["command"] += 1
        kind, payload = manifest_payload(data.draw(HARNESSES["mqtt_manifest"].strategy()))
        send(desired[kind], payload, retain=True)
        sent["manifest"] += 1
        sha, index, chunk, word = data.draw(HARNESSES["mqtt_chunk"].strategy())
        send(f"{base}/model/{sha}/{word}/{index}", chunk)
        sent["chunk"] += 1

    barrage()
    assert min(sent.values()) == ROUND
    # Still answering commands, still online, still detecting (once the host sets detection back:
    # the barrage held valid set_detection commands too, which a device must obey).
    before = len(obs.json_on("/device/dev1/event"))
    restore = {"detection_threshold": 0, "detection_threshold_list": [0, 0, 0, 0], "minimum_count": 0,
               "suppression_ms": 300, "average_window_duration_ms": 100, "latency_ms": 100}
    send(f"{base}/device/dev1/cmd", json.dumps({"v": 1, "type": "command", "action": "set_detection",
                                                "id": "last", "detection": restore}).encode())
    obs.wait_for(lambda: any(r.get("id") == "last" and r.get("ok") for r in obs.json_on("/device/dev1/reply")),
                 what="reply")
    obs.wait_for(lambda: len(obs.json_on("/device/dev1/event")) > before + 2, what="new detections")
    assert agent.alive and device_status(obs, "dev1")["online"]
    log = agent.log()
    assert "Traceback" not in log and "job" not in log, log[-3000:]  # the fleet worker logs "fleet job ... failed"
