"""Detections over MQTT: QoS 1, spooled while the broker is away, in order, none lost."""
from __future__ import annotations

import json
import time

from keywire.agent.fleet.spool import Spool

from .conftest import FLEET


def _ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def _first_seen(events: list[dict]) -> list[dict]:
    seen, out = set(), []
    for e in events:
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            out.append(e)
    return out


def test_event_schema(broker, start_agent, observe):
    obs = observe(broker, f"keywire/{FLEET}/device/+/event")
    agent = start_agent(broker, "dev1")
    ev = obs.wait_for(lambda: obs.json_on("/event"), what="a detection")[0]
    assert ev["v"] == 1 and ev["type"] == "detection"
    assert ev["device_id"] == "dev1" and ev["keyword"] in ("yes", "no") and 0 <= ev["score"] <= 255
    assert len(ev["event_id"]) == 32 and ev["wall_time"] > 1e9 and ev["monotonic"] > 0
    assert ev["model_version"] == "1" and len(ev["model_sha256"]) == 64
    assert ev["event_id"] in _ids(agent.detections())


def test_no_event_lost_when_broker_restarts_mid_stream(broker, start_agent, observe):
    obs = observe(broker, f"keywire/{FLEET}/device/+/event", persistent=True)
    agent = start_agent(broker, "dev1", detect_every_ms=150)
    obs.wait_for(lambda: len(obs.json_on("/event")) >= 3, what="first detections")
    broker.kill()
    time.sleep(2.5)                       # ~8 detections raised while the broker is down
    down = len(agent.detections())
    broker.start()
    time.sleep(1.0)
    raised = _ids(agent.detections())
    assert len(raised) > down > 3
    obs.wait_for(lambda: set(raised) <= set(_ids(obs.json_on("/event"))), timeout=30,
                 what="every raised detection delivered")
    delivered = _first_seen(obs.json_on("/event"))
    order = [e["monotonic"] for e in delivered]
    assert order == sorted(order), "detections delivered out of order"
    assert [e["event_id"] for e in delivered][: len(raised)] == raised


def test_spooled_events_survive_agent_crash(broker, start_agent, observe, tmp_path):
    obs = observe(broker, f"keywire/{FLEET}/device/+/event", persistent=True)
    state = tmp_path / "state"
    first = start_agent(broker, "dev1", state_dir=state, detect_every_ms=150)
    obs.wait_for(lambda: len(obs.json_on("/event")) >= 2, what="first detections")
    broker.kill()
    time.sleep(2.0)
    first.kill()                          # SIGKILL with events only in the spool
    raised = _ids(first.detections())
    spool = Spool(state / "spool")
    spooled = [json.loads(r.payload)["event_id"] for r in spool.pending()]
    spool.close()
    assert len(spooled) >= 5 and spooled == [i for i in raised if i in spooled]
    broker.start()
    second = start_agent(broker, "dev1", state_dir=state, detect_every_ms=150)
    # SIGKILL may land between printing a detection and spooling it: only that last one may be absent.
    must = raised[:-1]
    obs.wait_for(lambda: set(must) <= set(_ids(obs.json_on("/event"))), timeout=30,
                 what="detections of the killed agent delivered by its successor")
    delivered = [e["event_id"] for e in _first_seen(obs.json_on("/event"))]
    assert delivered[: len(must)] == must
    second.stop()
