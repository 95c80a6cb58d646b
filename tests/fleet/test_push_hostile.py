"""Pushes under a hostile network: forged copies of real manifests, floods of forgeries, and
pending models whose agent dies (a crash of the model vs a kill or a power cut)."""
from __future__ import annotations

import base64
import dataclasses
import os
import signal
import time

from keywire.agent.fleet.health import MAX_UNCLEAN_STOPS, RunEnd
from keywire.agent.fleet.receiver import SEEN_DIGESTS, PushReceiver
from keywire.agent.fleet.selftest import DeviceProfile
from keywire.agent.fleet.store import ModelStore
from keywire.agent.fleet.transport import FleetTransport
from keywire.protocol.manifest import build_manifest, sha256_hex
from keywire.protocol.messages import ModelInfo
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.signing import load_private_key, trusted_keys
from keywire.protocol.topics import DeviceTopics, FleetTopics

from .conftest import FLEET
from .test_push_faults import model_version, online, progress, send_model, wait_state

T = FleetTopics(FLEET)


def forged(m, **changes):
    """An unsigned copy of a genuine manifest (what anyone able to publish can make)."""
    return dataclasses.replace(m, signature="", **changes)


def test_forged_unsigned_copy_does_not_shadow_the_signed_manifest(broker, start_agent, observe, fleet_models, keys,
                                                                  tmp_path):
    obs = observe(broker)
    state = tmp_path / "state"
    agent = start_agent(broker, "dev1", state_dir=state)
    online(obs)
    key = load_private_key(keys[0])
    for model, version in ((fleet_models.v2, "2"), (fleet_models.v3, "3")):
        data = model.read_bytes()
        m = build_manifest(data, key, chunk_size=32768)
        for i in range(m.n_chunks):
            obs.publish(T.chunk(m.sha256, i), data[i * 32768:(i + 1) * 32768], retain=True)
        # the forgery comes first, on the device's own topic (read before all/desired at connect)
        obs.publish(T.device("dev1").desired, forged(m).to_json(), retain=True)
        if version == "3":
            agent.stop()          # ... and is still there when the agent starts again
            obs.messages.clear()
            agent = start_agent(broker, "dev1", state_dir=state)
        obs.publish(T.desired_all(), m.to_json(), retain=True)
        wait_state(obs, m.sha256, "active", timeout=30)
        obs.wait_for(lambda: model_version(obs) == version, what=f"v{version} from all/desired")
        assert any("not signed" in p.get("reason", "") for p in progress(obs, m.sha256) if p["state"] == "rejected")
    agent.stop()
    obs.messages.clear()
    agent = start_agent(broker, "dev1", state_dir=state)    # restarted with both still retained: stays on v3
    online(obs)
    assert model_version(obs) == "3" and ModelStore(state).state().rejected == ()


def test_a_flood_of_forged_manifests_is_answered_at_a_bounded_rate(broker, start_agent, observe, fleet_models, keys):
    obs = observe(broker, "keywire/t/device/dev1/#")
    agent = start_agent(broker, "dev1")
    online(obs)
    m = build_manifest(fleet_models.v2.read_bytes(), load_private_key(keys[0]))
    n = 3000
    started = time.monotonic()
    info = None
    for i in range(n):  # every one different: unsigned, or a made-up signature under the trusted key id
        fake = forged(m, issued_at=m.issued_at + i)
        if i % 2:
            fake = dataclasses.replace(fake, signature=base64.b64encode(os.urandom(64)).decode(), key_id=m.key_id)
        info = obs.client.publish(T.device("dev1").desired, fake.to_json(), qos=1)
    info.wait_for_publish(30)
    m2, _ = send_model(obs, fleet_models.v2, keys[0])          # the genuine push, queued behind the flood
    wait_state(obs, m2.sha256, "active", timeout=60)
    elapsed = time.monotonic() - started
    rejected = [p for p in obs.json_on("/push") if p["state"] == "rejected"]
    statuses = obs.json_on("/dev1/status")
    # a burst of 8, then one answer per 2 s (was: two publishes per forgery, 2 * n)
    assert len(rejected) <= 8 + elapsed / 2 + 1, (len(rejected), elapsed)
    assert len(statuses) <= len(rejected) + 10
    assert agent.alive
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 in the status")  # published just after "active"
    assert "rejected" in agent.log()


def test_receiver_state_stays_bounded_under_forgeries(tmp_path, fleet_models, keys):
    """What the receiver keeps per manifest is bounded: forgeries are kept nowhere but in a
    fixed-size limiter, verified manifests in a fixed-size list of handled digests."""
    key = load_private_key(keys[0])
    device = DeviceTopics(FLEET, "dev1")
    reports: list = []
    transport = FleetTransport(MqttSettings(url="mqtt://127.0.0.1:1"))  # never started: publishes nothing
    r = PushReceiver(device, (), ModelStore(tmp_path), trusted_keys([keys[1]]),
                     lambda: DeviceProfile(max_model_bytes=1), transport, lambda data, m: "", reports.append)
    m = build_manifest(fleet_models.v2.read_bytes(), key)
    for i in range(2000):
        r.handle_desired(device.desired, forged(m, issued_at=float(i)).to_json())
    assert len(reports) <= r.limiter.burst + 1 and r.limiter.suppressed >= 1990
    assert len(r.limiter._recent) <= 256 and r._candidates == {} and len(r._handled) == 0
    for i in range(200):   # genuinely signed, all different (refused: larger than this profile allows)
        r.handle_desired(T.desired_all(), dataclasses.replace(m, issued_at=float(i), signature="").signed(key).to_json())
    assert len(r._handled) == SEEN_DIGESTS and len(r._candidates) == 1
    assert sum(p.state == "rejected" and "accepts at most" in p.reason for p in reports) == 200


def test_power_cuts_during_the_trial_do_not_blacklist_the_new_model(broker, start_agent, observe, fleet_models, keys,
                                                                    tmp_path):
    """An agent killed (SIGKILL: what a power cut or the OOM killer looks like) while a new
    model is on trial keeps the new model; it is confirmed once it runs, never blacklisted."""
    obs = observe(broker)
    state = tmp_path / "state"
    agent = start_agent(broker, "dev1", state_dir=state)
    online(obs)
    m, _ = send_model(obs, fleet_models.v2, keys[0])
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 active")
    for _ in range(2):
        agent.kill()
        assert ModelStore(state).state().pending
        obs.messages.clear()
        agent = start_agent(broker, "dev1", state_dir=state)
        online(obs)
    assert model_version(obs) == "2"
    obs.wait_for(lambda: not ModelStore(state).state().pending, timeout=30, what="v2 confirmed")
    st = ModelStore(state).state()
    assert st.active.sha256 == m.sha256 and st.rejected == () and st.unclean == 0
    assert "stays on trial" in agent.log()


def test_new_model_that_keeps_crashing_the_agent_is_rolled_back(broker, start_agent, observe, fleet_models, keys,
                                                                 tmp_path):
    """An agent that crashes (a fatal signal, as a fault in the interpreter delivers) twice before
    a new model proved healthy goes back to the last-known-good model at its next start, and
    never retries the bad one."""
    obs = observe(broker)
    state = tmp_path / "state"
    agent = start_agent(broker, "dev1", state_dir=state)
    online(obs)
    m, _ = send_model(obs, fleet_models.v2, keys[0])
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 active")
    for _ in range(2):
        agent.proc.send_signal(signal.SIGSEGV)        # crash while v2 is still pending
        assert agent.proc.wait(10) == -signal.SIGSEGV
        assert ModelStore(state).state().pending
        assert "Segmentation fault" in (state / "models" / "fault.log").read_text()
        obs.messages.clear()
        agent = start_agent(broker, "dev1", state_dir=state)
        online(obs)
    assert model_version(obs) == "1"
    st = ModelStore(state).state()
    assert st.active.version == "1" and m.sha256 in st.rejected
    p = wait_state(obs, m.sha256, "rejected")          # the retained desired v2 is refused, not retried
    assert "failed on this device before" in p["reason"]
    assert "rolled back" in agent.log() and "crashed" in agent.log()


def test_a_model_deferred_after_unclean_stops_is_retried_only_by_a_newer_push(tmp_path, fleet_models, keys):
    key = load_private_key(keys[0])
    device = DeviceTopics(FLEET, "dev1")
    store = ModelStore(tmp_path)
    a, b = fleet_models.base.read_bytes(), fleet_models.v2.read_bytes()
    m = build_manifest(b, key, issued_at=100.0)
    store.adopt(a, ModelInfo("fleet-test", "1", sha256_hex(a)))
    store.install(b, ModelInfo("fleet-test", "2", m.sha256), issued_at=m.issued_at)
    for _ in range(MAX_UNCLEAN_STOPS):
        store.note_boot(RunEnd.UNCLEAN, "killed")
    assert store.state().deferred == (m.sha256,) and store.state().active.version == "1"
    reports: list = []
    r = PushReceiver(device, (), store, trusted_keys([keys[1]]), lambda: DeviceProfile(max_model_bytes=1),
                     FleetTransport(MqttSettings(url="mqtt://127.0.0.1:1")), lambda data, mm: "", reports.append)
    r.handle_desired(device.desired, m.to_json())            # the retained manifest that brought it: not retried
    assert reports[-1].state == "rejected" and "push it again" in reports[-1].reason
    again = build_manifest(b, key, issued_at=200.0)          # pushed again: considered (here: too large)
    r.handle_desired(device.desired, again.to_json())
    assert reports[-1].state == "rejected" and "accepts at most" in reports[-1].reason
