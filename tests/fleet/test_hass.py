"""Home Assistant discovery on a real broker with a real agent: one flag turns it on, the
fleet is part of the config topics, only keywords are event types, and detections older than
the maximum event age reach the event log but not Home Assistant's topic."""
from __future__ import annotations

import json
import time

from keywire.agent.fleet.hass import discovery_messages, fresh_detection
from keywire.protocol.topics import DeviceTopics

from .conftest import FLEET


def _retained(obs, topic: str):
    return obs.wait_for(lambda: next((json.loads(p) for t, p, retain in obs.messages if t == topic and retain), None),
                        what=f"retained {topic}")


def test_discovery_configs_name_fleet_keywords_origin_and_default_entity_id() -> None:
    msgs = dict(discovery_messages(DeviceTopics("home", "kitchen.pi"),
                                   ("on", "off", "_unknown_", "_silence_"), "1.2"))
    event = json.loads(msgs["homeassistant/event/kitchen_pi/home_keyword/config"])
    sensor = json.loads(msgs["homeassistant/sensor/kitchen_pi/home_model/config"])
    assert event["event_types"] == ["on", "off"]
    assert event["default_entity_id"] == "event.keywire_home_kitchen_pi_keyword" and "object_id" not in event
    assert sensor["default_entity_id"] == "sensor.keywire_home_kitchen_pi_model" and "object_id" not in sensor
    assert event["origin"] == {"name": "keywire", "sw_version": "1.2"} == sensor["origin"]
    assert event["state_topic"] == "keywire/home/device/kitchen.pi/ha_event"
    other = dict(discovery_messages(DeviceTopics("office", "kitchen.pi"), ("on",), "1.2"))
    assert not set(other) & set(msgs)  # a second fleet's device of the same name has its own configs


def test_fresh_detection_age_limit() -> None:
    d = json.dumps({"v": 1, "type": "detection", "keyword": "on", "wall_time": 1000.0}).encode()
    assert fresh_detection(d, 300, now=1299.0) == d
    assert fresh_detection(d, 300, now=1301.0) is None
    assert fresh_detection(b"not json", 300, now=1000.0) is None


def test_ha_discovery_flag_and_max_event_age_on_real_broker(broker, start_agent, observe) -> None:
    dev = DeviceTopics(FLEET, "dev1")
    obs = observe(broker, f"keywire/{FLEET}/device/dev1/#", persistent=True)
    agent = start_agent(broker, "dev1", extra=("--ha-discovery", "--max-event-age", "1"), detect_every_ms=150)
    obs.wait_for(lambda: any(st.get("online") for st in obs.json_on("/status")), what="the device online")
    late = observe(broker, "homeassistant/#")  # subscribes afterwards, like Home Assistant starting later
    cfg = _retained(late, f"homeassistant/event/dev1/{FLEET}_keyword/config")
    assert cfg["event_types"] == ["yes", "no"] and cfg["state_topic"] == f"{dev.base}/ha_event"
    assert cfg["origin"]["name"] == "keywire" and cfg["default_entity_id"] == f"event.keywire_{FLEET}_dev1_keyword"
    _retained(late, f"homeassistant/sensor/dev1/{FLEET}_model/config")
    obs.wait_for(lambda: obs.json_on("/ha_event"), what="a fresh detection on the Home Assistant topic")

    t_down = time.time()
    broker.kill()
    time.sleep(3.0)                       # detections spool; the first of them grow older than 1 s
    t_up = time.time()
    broker.start()
    stale = [d["event_id"] for d in agent.detections() if t_down + 0.5 < d["wall_time"] < t_up - 1.5]
    assert len(stale) >= 3
    obs.wait_for(lambda: set(stale) <= {e["event_id"] for e in obs.json_on("/event")}, timeout=30,
                 what="the backlog on the event log")
    obs.wait_for(lambda: [e for e in obs.json_on("/ha_event") if e["wall_time"] > t_up],
                 what="fresh detections on the Home Assistant topic after the reconnect")
    ha = obs.json_on("/ha_event")
    ha_ids = [e["event_id"] for e in ha]
    assert not set(stale) & set(ha_ids), "detections older than --max-event-age reached Home Assistant"
    assert len(ha_ids) == len(set(ha_ids)) and set(ha_ids) <= {e["event_id"] for e in obs.json_on("/event")}
    assert all(e["keyword"] in ("yes", "no") for e in ha)
