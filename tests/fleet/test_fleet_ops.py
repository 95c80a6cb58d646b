"""Fleet operations: canary pushes, remote commands, status/watch/keys commands, telemetry,
Home Assistant discovery, MQTT 5."""
from __future__ import annotations

import json
import subprocess
import sys

from keywire.protocol.messages import Command
from keywire.protocol.topics import FleetTopics

from .conftest import FLEET, device_status, run_keywire
from .test_push_faults import model_version, online

T = FleetTopics(FLEET)


def test_canary_stops_a_bad_model_and_passes_a_good_one(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    for d in ("dev1", "dev2", "dev3"):
        start_agent(broker, d, mqtt_config={"groups": ["hall"]})
    for d in ("dev1", "dev2", "dev3"):
        online(obs, d)
    r = run_keywire("push", str(fleet_models.bad_classes), "--mqtt", broker.url, "--fleet", FLEET, "--key",
                    str(keys[0]), "--group", "hall", "--canary", "1", "--wait", "30")
    assert r.returncode == 11, r.stdout + r.stderr
    assert "FAILED dev1: rejected: model does not load" in r.stdout
    assert "FAILED dev2: waiting: not pushed: a canary device failed" in r.stdout
    assert not any(t == T.desired_group("hall") for t, _, _ in obs.messages)
    r = run_keywire("push", str(fleet_models.v2), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--group", "hall", "--canary", "1", "--wait", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "active on 3/3 devices" in r.stdout
    for d in ("dev1", "dev2", "dev3"):
        obs.wait_for(lambda: model_version(obs, d) == "2", what=f"{d} on v2")


def _command(obs, action: str, cid: str, **detection) -> dict:
    obs.publish(T.device("dev1").command, Command(action, cid, detection).to_json())
    return obs.wait_for(lambda: next((r for r in obs.json_on("/dev1/reply") if r["id"] == cid), None),
                        what=f"reply to {cid}")


def test_remote_commands(broker, start_agent, observe, fleet_models, keys, tmp_path):
    obs = observe(broker)
    state = tmp_path / "state"
    agent = start_agent(broker, "dev1", state_dir=state)
    online(obs)
    r = _command(obs, "set_detection", "c1", detection_threshold=250, suppression_ms=900)
    assert r["ok"], r
    st = obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["detection"]["detection_threshold"] == 250
                      and s, what="threshold 250 in status")
    assert st["detection"]["suppression_ms"] == 900
    r = _command(obs, "set_detection", "c2", detection_threshold_list=[1, 2])
    assert not r["ok"] and "detection_threshold_list" in r["reason"]
    r = _command(obs, "rollback", "c3")
    assert not r["ok"] and "no previous model" in r["reason"]
    assert run_keywire("push", str(fleet_models.v2), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                       "--device", "dev1", "--wait", "30").returncode == 0
    r = _command(obs, "rollback", "c4")
    assert r["ok"], r
    obs.wait_for(lambda: model_version(obs) == "1", what="rolled back to v1")
    assert any(p["state"] == "rolled_back" for p in obs.json_on("/dev1/push"))
    assert _command(obs, "reload", "c5")["ok"]
    before = len(obs.json_on("/dev1/status"))
    assert _command(obs, "status", "c6")["ok"]
    obs.wait_for(lambda: len(obs.json_on("/dev1/status")) > before, what="status now")
    # the device's own threshold survives a restart
    agent.stop()
    obs.messages.clear()
    start_agent(broker, "dev1", state_dir=state)
    st = online(obs)
    assert st["detection"]["detection_threshold"] == 250 and st["model"]["version"] == "1"


def test_status_watch_keys_telemetry_discovery_mqtt5(broker, start_agent, observe, tmp_path):
    r = run_keywire("keys", "generate", str(tmp_path / "k"))
    assert r.returncode == 0 and (tmp_path / "k" / "signing.key").exists() and "key id" in r.stdout
    r = run_keywire("keys", "generate", str(tmp_path / "k"))
    assert r.returncode != 0 and "already exists" in r.stderr and "Traceback" not in r.stderr
    obs = observe(broker)
    start_agent(broker, "dev1", mqtt_config={"protocol": "5", "ha_discovery": True, "telemetry_s": 0.5})
    online(obs)
    obs.wait_for(lambda: any(t == f"homeassistant/event/{FLEET}/dev1/config" for t, _, _ in obs.messages),
                 what="discovery published")  # before the late subscriber, so it must get the retained copy
    late = observe(broker, "homeassistant/#")  # subscribes afterwards, like Home Assistant starting later
    cfg = late.wait_for(lambda: next((json.loads(p) for t, p, retain in late.messages
                                      if t == f"homeassistant/event/{FLEET}/dev1/config" and retain), None),
                        what="retained Home Assistant discovery config")
    assert cfg["event_types"] == ["yes", "no"]  # _unknown_ and _silence_ never fire
    assert cfg["state_topic"] == T.device("dev1").base + "/ha_event" and cfg["unique_id"] == "keywire_t_dev1_keyword"
    tel = obs.wait_for(lambda: [t for t in obs.json_on("/dev1/telemetry") if t["inferences_per_s"] > 0],
                       what="telemetry")[-1]
    assert 5 < tel["inferences_per_s"] < 15          # latency_ms 100: ten inferences per second of audio
    assert tel["latency_ms_p99"] >= tel["latency_ms_p50"] > 0
    assert tel["rss_bytes"] > 10_000_000 and tel["audio_level_dbfs"] <= -100
    obs.wait_for(lambda: obs.json_on("/dev1/telemetry")[-1]["detections_total"].get("yes", 0) >= 2,
                 what="detections counted")
    r = run_keywire("fleet", "status", "--mqtt", broker.url, "--fleet", FLEET, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["device_id"] for x in rows] == ["dev1"] and rows[0]["online"] and rows[0]["version"] == "1"
    assert rows[0]["detections_per_hour"] > 0
    r = run_keywire("fleet", "status", "--mqtt", broker.url, "--fleet", FLEET)
    assert "dev1" in r.stdout and "fleet-test" in r.stdout
    w = subprocess.run([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                        "watch", "--mqtt", broker.url, "--fleet", FLEET, "--json", "--count", "2"],
                       capture_output=True, text=True, timeout=30)
    lines = [json.loads(x) for x in w.stdout.splitlines()]
    assert w.returncode == 0 and len(lines) == 2 and all(x["device_id"] == "dev1" for x in lines)
    r = run_keywire("fleet", "status", "--mqtt", "mqtt://127.0.0.1:1", "--fleet", FLEET)
    assert r.returncode != 0 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    # remote commands from the host command line
    r = run_keywire("fleet", "command", "set_detection", "--mqtt", broker.url, "--fleet", FLEET, "--device", "dev1",
                    "--threshold", "240")
    assert r.returncode == 0 and "dev1: set_detection: ok" in r.stdout, r.stdout + r.stderr
    obs.wait_for(lambda: device_status(obs, "dev1")["detection"]["detection_threshold"] == 240, what="240")
    r = run_keywire("fleet", "command", "set_detection", "--mqtt", broker.url, "--fleet", FLEET, "--device", "dev1",
                    "--threshold", "300")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "detection_threshold = '300' is out of range 0..255" \
        in r.stderr, r.stderr  # the host checks the detection table before anything is sent
    r = run_keywire("fleet", "command", "set_detection", "--mqtt", broker.url, "--fleet", FLEET, "--device", "dev1",
                    "--latency-ms", "1e12")
    assert r.returncode == 2 and "latency_ms = '1e12' must be an integer in 10..2000" in r.stderr, r.stderr
    # a device refuses what the host would not send: values far out of range change nothing
    huge, det_before = 2 ** 70, device_status(obs, "dev1")["detection"]
    r = _command(obs, "set_detection", "c-huge", average_window_duration_ms=huge, suppression_ms=huge,
                 minimum_count=huge)
    assert not r["ok"] and "out of range" in r["reason"] and "Traceback" not in r["reason"], r
    r = _command(obs, "set_detection", "c-list", detection_threshold_list=[200] * 12)
    assert not r["ok"] and "12 values for 4 classes" in r["reason"], r
    assert device_status(obs, "dev1")["detection"] == det_before and det_before["detection_threshold"] == 240
    # latency_ms is settable remotely, under the detector's own name
    r = run_keywire("fleet", "command", "set_detection", "--mqtt", broker.url, "--fleet", FLEET, "--device", "dev1",
                    "--latency-ms", "200")
    assert r.returncode == 0, r.stdout + r.stderr
    obs.wait_for(lambda: device_status(obs, "dev1")["detection"]["latency_ms"] == 200, what="latency 200")
    r = run_keywire("fleet", "command", "status", "--mqtt", broker.url, "--fleet", FLEET, "--device", "ghost",
                    "--timeout", "1")
    assert r.returncode != 0 and "no reply from ghost" in r.stderr
