"""Home Assistant discovery on a real broker with a real agent: one flag turns it on, the
fleet is part of the config topics, only keywords are event types, and detections older than
the maximum event age reach the event log but not Home Assistant's topic."""
from __future__ import annotations

import json
import time

from keywire.agent.fleet.hass import discovery_messages, fresh_detection
from keywire.protocol.messages import Detection
from keywire.protocol.topics import DeviceTopics

from .conftest import FLEET


def _retained(obs, topic: str):
    return obs.wait_for(lambda: next((json.loads(p) for t, p, retain in obs.messages if t == topic and retain), None),
                        what=f"retained {topic}")


def test_discovery_configs_name_fleet_keywords_origin_and_default_entity_id() -> None:
    msgs = dict(discovery_messages(DeviceTopics("home", "kitchen.pi"),
                                   ("on", "off", "_unknown_", "_silence_"), "1.2"))
    event = json.loads(msgs["homeassistant/event/home/kitchen_pi/config"])
    sensor = json.loads(msgs["homeassistant/sensor/home/kitchen_pi/config"])
    assert event["event_types"] == ["on", "off"]
    assert event["default_entity_id"] == "event.keywire_home_kitchen_pi_keyword" and "object_id" not in event
    assert sensor["default_entity_id"] == "sensor.keywire_home_kitchen_pi_model" and "object_id" not in sensor
    assert event["origin"] == {"name": "keywire", "sw_version": "1.2"} == sensor["origin"]
    assert event["state_topic"] == "keywire/home/device/kitchen.pi/ha_event"
    other = dict(discovery_messages(DeviceTopics("office", "kitchen.pi"), ("on",), "1.2"))
    assert not set(other) & set(msgs)  # a second fleet's device of the same name has its own configs


def test_fresh_detection_age_limit() -> None:
    d = Detection(keyword="on", score=200, time_ms=10, wall_time=1000.0).to_json()
    assert fresh_detection(d, 300, now=1299.0) == d
    assert fresh_detection(d, 300, now=1301.0) is None
    assert fresh_detection(b"not json", 300, now=1000.0) is None
    assert fresh_detection(b'{"v": 1, "type": "detection", "keyword": "on", "wall_time": 1000.0}', 300,
                           now=1000.0) is None  # not a whole detection


def test_ha_discovery_flag_and_max_event_age_on_real_broker(broker, start_agent, observe) -> None:
    dev = DeviceTopics(FLEET, "dev1")
    obs = observe(broker, f"keywire/{FLEET}/device/dev1/#", persistent=True)
    agent = start_agent(broker, "dev1", extra=("--ha-discovery", "--max-event-age", "1"), detect_every_ms=150)
    seen = observe(broker, "homeassistant/#")
    seen.wait_for(lambda: len({t for t, _, _ in seen.messages}) >= 2, what="discovery published")
    late = observe(broker, "homeassistant/#")  # subscribes afterwards, like Home Assistant starting later
    cfg = _retained(late, f"homeassistant/event/{FLEET}/dev1/config")  # node id: the fleet
    assert cfg["event_types"] == ["yes", "no"] and cfg["state_topic"] == f"{dev.base}/ha_event"
    assert cfg["origin"]["name"] == "keywire" and cfg["default_entity_id"] == f"event.keywire_{FLEET}_dev1_keyword"
    _retained(late, f"homeassistant/sensor/{FLEET}/dev1/config")
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
    # QoS 1 is at-least-once: a detection in flight when the broker died may arrive twice (the
    # agent re-sends an unconfirmed publish, or the restarted broker re-sends to the observer's
    # persistent session). Anything detected later must reach Home Assistant's topic once.
    repeated = {i for i in ha_ids if ha_ids.count(i) > 1}
    assert all(e["wall_time"] < t_down for e in ha if e["event_id"] in repeated), ha_ids
    assert set(ha_ids) <= {e["event_id"] for e in obs.json_on("/event")}
    assert all(e["keyword"] in ("yes", "no") for e in ha)


def test_shipped_acl_lets_a_device_write_only_its_own_ha_topics(broker_factory, start_agent, observe, tmp_path):
    import subprocess

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.fixtures.paths import REPO

    pw = tmp_path / "passwd"
    for i, user in enumerate(("keywire-host", "homeassistant", "dev1", "dev2")):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, f"{user}-secret"],
                       check=True, capture_output=True)
    b = broker_factory(anonymous=False, extra_config=[f"password_file {pw}",
                                                      f"acl_file {REPO / 'systemd' / 'mosquitto-keywire.acl'}"])
    ha = observe(b, "#", username="homeassistant", password="homeassistant-secret")
    agent = start_agent(b, "dev1", extra=("--ha-discovery",),
                        mqtt_config={"username": "dev1", "password": "dev1-secret"})
    ha.wait_for(lambda: any(t == f"homeassistant/event/{FLEET}/dev1/config" for t, _, _ in ha.messages),
                what="dev1's discovery config under the ACL")
    ha.wait_for(lambda: ha.json_on("/dev1/ha_event"), what="Home Assistant reading dev1's ha_event")
    rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev2-raw")
    rogue.username_pw_set("dev2", "dev2-secret")
    rogue.connect(b.host, b.port)
    rogue.loop_start()
    forged = [(f"homeassistant/event/{FLEET}/dev1/config", b'{"name":"forged"}'),
              (f"keywire/{FLEET}/device/dev1/ha_event", b'{"v":1,"type":"detection","keyword":"forged"}')]
    for topic, payload in forged:
        rogue.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    rogue.publish(f"homeassistant/event/{FLEET}/dev2/config", b'{"name":"own"}', qos=1).wait_for_publish(5)
    time.sleep(1.0)
    rogue.loop_stop()
    rogue.disconnect()
    assert any(t == f"homeassistant/event/{FLEET}/dev2/config" for t, _, _ in ha.messages)  # its own config works
    for topic, payload in forged:
        assert all(p != payload for t, p, _ in ha.messages if t == topic), f"ACL let dev2 write {topic}"
    assert agent.alive
