"""Model push under faults: interrupted transfers, crashes during install, corrupt, duplicate,
out-of-order chunks, bad signatures, oversize and unservable models, garbage on every topic."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Iterable, Optional

from keywire.agent.fleet.store import ModelStore
from keywire.protocol.manifest import build_manifest, split
from keywire.protocol.signing import generate_keys, load_private_key
from keywire.protocol.topics import FleetTopics

from .conftest import FLEET, device_status, run_keywire

T = FleetTopics(FLEET)


def send_model(obs, model: Path, key_path: Path, device: str = "dev1", chunk_size: int = 32768,
               skip: Iterable[int] = (), corrupt: Iterable[int] = (), order: Optional[list[int]] = None,
               manifest_first: bool = False, **manifest_changes):
    """Act as the host by hand: retained chunks (some skipped/corrupted/reordered) and the manifest."""
    data = model.read_bytes()
    m = build_manifest(data, load_private_key(key_path), chunk_size)
    if manifest_changes:
        m = dataclasses.replace(m, **manifest_changes)
    chunks = list(split(data, chunk_size))
    if manifest_first:
        obs.publish(T.device(device).desired, m.to_json(), retain=True)
    for i in (order if order is not None else range(len(chunks))):
        if i in set(skip):
            continue
        c = chunks[i]
        if i in set(corrupt):
            c = bytes([c[0] ^ 0xFF]) + c[1:]
        obs.publish(T.chunk(m.sha256, i), c, retain=True)
    if not manifest_first:
        obs.publish(T.device(device).desired, m.to_json(), retain=True)
    return m, chunks


def progress(obs, sha: str) -> list[dict]:
    return [p for p in obs.json_on("/push") if p.get("sha256") == sha]


def wait_state(obs, sha: str, state: str, timeout: float = 20.0) -> dict:
    return obs.wait_for(lambda: next((p for p in progress(obs, sha) if p["state"] == state), None), timeout,
                        what=f"progress {state} for {sha[:12]}")


def staged(state: Path, sha: str) -> int:
    """Verified chunks a device holds on disk for a transfer (acknowledgements are throttled)."""
    return len(list((state / "models" / "staging" / sha).glob("chunk-*")))


def online(obs, device: str = "dev1") -> dict:
    return obs.wait_for(lambda: (s := device_status(obs, device)) and s["online"] and s, what=f"{device} online")


def model_version(obs, device: str = "dev1") -> str:
    s = device_status(obs, device)
    return s["model"]["version"] if s else ""


def test_transfer_resumes_after_broker_restart_and_agent_restart(broker, start_agent, observe, fleet_models, keys,
                                                                  tmp_path):
    obs = observe(broker, persistent=True)
    state = tmp_path / "state"
    agent = start_agent(broker, "dev1", state_dir=state)
    online(obs)
    n = -(-fleet_models.v2.stat().st_size // 4096)
    m, chunks = send_model(obs, fleet_models.v2, keys[0], chunk_size=4096, skip=range(20, n))
    obs.wait_for(lambda: staged(state, m.sha256) == 20, what="20 chunks received")
    broker.kill()                         # the transfer is cut half-way ...
    agent.kill()                          # ... and the agent dies too
    assert staged(state, m.sha256) == 20
    broker.start()
    obs.messages.clear()
    start_agent(broker, "dev1", state_dir=state)
    first = obs.wait_for(lambda: progress(obs, m.sha256), what="progress after restart")[0]
    assert first["received"] == 20 and first["total"] == n  # resumed, not restarted
    for i in range(20, n):
        obs.publish(T.chunk(m.sha256, i), chunks[i], retain=True)
    wait_state(obs, m.sha256, "active")
    received = [p["received"] for p in progress(obs, m.sha256) if p["state"] == "receiving"]
    assert received == sorted(received) and len(received) <= n - 20 + 1


def test_push_cli_republishes_after_broker_loses_everything(broker_factory, start_agent, observe, fleet_models, keys):
    """Broker without persistence restarts during a push to an offline device: the host sends
    chunks and manifest again; the device picks them up when it returns."""
    import subprocess
    import sys

    b = broker_factory(persist=False)
    obs = observe(b, persistent=False)
    agent = start_agent(b, "dev1")
    online(obs)
    agent.stop()                          # offline: the push has to wait for it
    push = subprocess.Popen([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                             "push", str(fleet_models.v2), "--mqtt", b.url, "--fleet", FLEET, "--key", str(keys[0]),
                             "--device", "dev1", "--wait", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    obs.wait_for(lambda: any(t.endswith("/dev1/desired") for t, _, _ in obs.messages), what="desired published")
    b.restart(down_s=0.5)                 # retained chunks and manifest are gone
    time.sleep(2.5)                       # the host reconnects (backoff 1 s) and publishes again
    start_agent(b, "dev1")
    out, err = push.communicate(timeout=90)
    assert push.returncode == 0, out + err
    assert "active on 1/1" in out


def test_agent_killed_during_install_keeps_a_whole_model(broker, start_agent, observe, fleet_models, keys, tmp_path):
    obs = observe(broker)
    state = tmp_path / "state"
    for k, delay in enumerate((0.0, 0.03, 0.08, 0.15)):
        agent = start_agent(broker, "dev1", state_dir=state)
        online(obs)
        model = (fleet_models.v2, fleet_models.v3, *fleet_models.more)[k]
        data = model.read_bytes()
        m, chunks = send_model(obs, model, keys[0], skip=[7])
        obs.wait_for(lambda: staged(state, m.sha256) == 7, what="7 of 8 chunks")
        obs.publish(T.chunk(m.sha256, 7), chunks[7], retain=True)   # completes: verify, self-test, install ...
        time.sleep(delay)
        agent.kill()                                                # ... killed somewhere in there
        store = ModelStore(state)
        st = store.state()
        assert st.active is not None and store.verify_file(st.active.sha256)
        assert store.active_path() is not None
        obs.messages.clear()
        agent = start_agent(broker, "dev1", state_dir=state)       # finishes from what is on disk
        obs.wait_for(lambda: model_version(obs) == m.version, what=f"v{m.version} active after restart")
        assert ModelStore(state).state().active.sha256 == m.sha256 == hashlib.sha256(data).hexdigest()
        agent.stop()


def test_corrupt_chunk_is_refused_and_fetched_again(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    start_agent(broker, "dev1")
    online(obs)
    m, chunks = send_model(obs, fleet_models.v2, keys[0], corrupt=[2])
    p = obs.wait_for(lambda: next((p for p in progress(obs, m.sha256) if "corrupt" in p["reason"]), None),
                     what="corrupt chunk reported")
    assert "chunk 2" in p["reason"]
    assert model_version(obs) == "1"
    obs.publish(T.chunk(m.sha256, 2), chunks[2], retain=True)   # the good one replaces it
    wait_state(obs, m.sha256, "active")
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 in status")


def test_duplicate_and_out_of_order_chunks(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    start_agent(broker, "dev1")
    online(obs)
    n = -(-fleet_models.v2.stat().st_size // 8192)
    order = list(range(n)) * 2
    random.Random(5).shuffle(order)
    m, chunks = send_model(obs, fleet_models.v2, keys[0], chunk_size=8192, order=order, manifest_first=True)
    for i in (0, 3, n - 1):  # late duplicates, not retained
        obs.publish(T.chunk(m.sha256, i), chunks[i])
    wait_state(obs, m.sha256, "active")
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 in status")


def test_bad_signatures_are_rejected_and_reported(broker, start_agent, observe, fleet_models, keys, tmp_path):
    obs = observe(broker)
    agent = start_agent(broker, "dev1")
    online(obs)
    stranger, _ = generate_keys(tmp_path / "stranger")
    cases = [("untrusted key", dict(key_path=stranger)),
             ("signature is invalid", dict(version="99")),       # changed after signing
             ("not signed", dict(signature=""))]
    for reason, kw in cases:
        key_path = kw.pop("key_path", keys[0])
        with obs.lock:
            obs.messages.clear()
        m, _ = send_model(obs, fleet_models.v2, key_path, **kw)
        obs.wait_for(lambda: (s := device_status(obs, "dev1")) and reason in s["reason"], what=f"status: {reason}")
        p = wait_state(obs, m.sha256, "rejected")
        assert reason in p["reason"]
        assert model_version(obs) == "1"
    assert agent.alive
    assert "rejected" in agent.log()


def test_oversize_and_unservable_models_are_refused(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker)
    start_agent(broker, "dev1")
    online(obs)
    data = fleet_models.v2.read_bytes()
    m = build_manifest(data, load_private_key(keys[0]))
    big = dataclasses.replace(m, size=64 * 1024 * 1024, chunks=tuple(m.chunks[0] for _ in range(2048)),
                              sha256="f" * 64, signature="").signed(load_private_key(keys[0]))
    obs.publish(T.device("dev1").desired, big.to_json(), retain=True)
    p = wait_state(obs, big.sha256, "rejected")
    assert "accepts at most" in p["reason"]
    for model, reason in ((fleet_models.wrong_shape, "input shape"), (fleet_models.wrong_rate, "Hz"),
                          (fleet_models.bad_classes, "does not load")):
        r = run_keywire("push", str(model), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                        "--device", "dev1", "--wait", "30")
        assert r.returncode == 11, r.stdout + r.stderr
        assert "FAILED dev1: rejected:" in r.stdout and reason in r.stdout, r.stdout
    assert model_version(obs) == "1"
    # a rejected model is not retried; a good one still goes through
    r = run_keywire("push", str(fleet_models.v2), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", "dev1", "--wait", "30", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] and res["version"] == "2" and res["devices"] == {"dev1": {"state": "active", "reason": ""}}


def test_garbage_on_every_subscribed_topic(broker, start_agent, observe, fleet_models, keys, tmp_path):
    obs = observe(broker)
    agent = start_agent(broker, "dev1", mqtt_config={"groups": ["kitchen"]})
    online(obs)
    m, chunks = send_model(obs, fleet_models.v2, keys[0], skip=[5])   # a transfer in progress
    obs.wait_for(lambda: staged(tmp_path / "state-dev1", m.sha256) == 7, what="7 chunks")
    d = T.device("dev1")
    topics = [d.desired, d.command, T.desired_all(), T.desired_group("kitchen"), T.chunk(m.sha256, 5),
              T.chunk(m.sha256, 999), T.chunk(m.sha256, -1), f"keywire/{FLEET}/model/{m.sha256}/chunk/x"]
    rng = random.Random(1)
    payloads = [b"", b"{", b"null", b"[]", b'{"v":1}', b'{"v":1,"type":"manifest","size":"big"}',
                b'{"v":1,"type":"command","action":"set_detection","detection":{"detection_threshold":"x"}}',
                b'{"v":1,"type":"command","action":"set_detection","detection":{"detection_threshold":900}}',
                json.dumps({"v": 1, "type": "manifest", **{k: None for k in ("name", "size", "chunks")}}).encode()]
    payloads += [bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 100, 5000)))) for _ in range(6)]
    for t in topics:
        for p in payloads:
            obs.publish(t, p)
    time.sleep(1.0)
    assert agent.alive
    replies = obs.json_on("/dev1/reply")
    assert len(replies) >= len(payloads) and not any(r["ok"] for r in replies)
    assert any("detection_threshold" in r["reason"] and "0..255" in r["reason"] for r in replies)  # the table's limit
    assert model_version(obs) == "1"
    obs.publish(T.chunk(m.sha256, 5), chunks[5], retain=True)          # the real transfer still completes
    wait_state(obs, m.sha256, "active")
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 after the garbage")
