"""`keywire fleet prune`: old models' retained chunks leave the broker, the desired one's stay."""
from __future__ import annotations

import hashlib
import json
import time

from .conftest import FLEET, push_to_device, run_keywire, wait_online


def _retained_chunks(observe, broker) -> dict[str, int]:
    """Model sha256 -> retained chunks on the broker, as a newly subscribing client sees them."""
    obs = observe(broker, f"keywire/{FLEET}/model/+/chunk/+")
    time.sleep(1.0)
    counts: dict[str, int] = {}
    with obs.lock:
        for topic, payload, retained in obs.messages:
            if retained and payload:
                sha = topic.split("/")[3]
                counts[sha] = counts.get(sha, 0) + 1
    obs.close()
    return counts


def test_prune_clears_only_models_no_desired_manifest_names(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    start_agent(broker, "dev1")
    wait_online(obs, "dev1")
    for model in (fleet_models.v2, fleet_models.v3):
        push_to_device(broker, keys, model, "dev1", "--chunk-size", "65536")
    v2, v3 = (hashlib.sha256(m.read_bytes()).hexdigest() for m in (fleet_models.v2, fleet_models.v3))
    before = _retained_chunks(observe, broker)
    assert set(before) == {v2, v3} and before[v2] == before[v3] > 1

    r = run_keywire("fleet", "prune", "--mqtt", broker.url, "--fleet", FLEET, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"would clear {v2[:12]}: {before[v2]} chunks" in r.stdout
    assert _retained_chunks(observe, broker) == before      # a dry run clears nothing

    r = run_keywire("fleet", "prune", "--mqtt", broker.url, "--fleet", FLEET, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cleared"] == {v2: before[v2]} and out["kept"] == {v3: before[v3]}
    assert out["desired"] == {f"keywire/{FLEET}/device/dev1/desired": v3}
    assert _retained_chunks(observe, broker) == {v3: before[v3]}

    # Something unreadable on a desired topic: the scan cannot tell what it named, so it keeps all.
    obs.publish(f"keywire/{FLEET}/group/lab/desired", b"{not a manifest", retain=True)
    r = run_keywire("fleet", "prune", "--mqtt", broker.url, "--fleet", FLEET)
    assert r.returncode == 0, r.stderr
    assert "holds no readable manifest" in r.stderr and "cleared 0 chunks" in r.stdout
    assert _retained_chunks(observe, broker) == {v3: before[v3]}


def test_prune_names_an_unreachable_broker():
    r = run_keywire("fleet", "prune", "--mqtt", "mqtt://127.0.0.1:1", "--fleet", FLEET)
    assert r.returncode != 0
    assert "cannot connect to the broker" in r.stderr and len(r.stderr.strip().splitlines()) == 1
