"""`keywire push` reports the outcome of *its* push: never a refusal of a forged copy of the
same model, nor an earlier push's outcome (a deferral, an operator's rollback) still retained
in the device's status. And an operator's rollback does not blacklist the model."""
from __future__ import annotations

import base64
import dataclasses
import os

from keywire.agent.fleet.health import MAX_UNCLEAN_STOPS, RunEnd
from keywire.agent.fleet.receiver import PushReceiver
from keywire.agent.fleet.selftest import DeviceProfile
from keywire.agent.fleet.store import ModelStore
from keywire.agent.fleet.transport import FleetTransport
from keywire.protocol.manifest import build_manifest, sha256_hex, split
from keywire.protocol.messages import Command, ModelInfo
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.signing import load_private_key, trusted_keys
from keywire.protocol.topics import DeviceTopics, FleetTopics

from .conftest import FLEET, device_status, push_to_device
from .test_push_faults import model_version, online, progress

T = FleetTopics(FLEET)


def _unsigned(m):
    return dataclasses.replace(m, signature="")


def _bad_signature(m):
    return dataclasses.replace(m, signature=base64.b64encode(os.urandom(64)).decode())


def test_a_refusal_names_the_manifest_refused_not_the_genuine_one(tmp_path, fleet_models, keys):
    key = load_private_key(keys[0])
    device = DeviceTopics(FLEET, "dev1")
    reports: list = []
    r = PushReceiver(device, (), ModelStore(tmp_path), trusted_keys([keys[1]]),
                     lambda: DeviceProfile(max_model_bytes=1), FleetTransport(MqttSettings(url="mqtt://127.0.0.1:1")),
                     lambda data, m: "", reports.append)
    m = build_manifest(fleet_models.v2.read_bytes(), key)
    for fake in (_unsigned(m), _bad_signature(m)):
        r.handle_desired(device.desired, fake.to_json())
        assert reports[-1].state == "rejected" and reports[-1].sha256 == m.sha256
        assert reports[-1].manifest == fake.push_id != m.push_id
    r.handle_desired(T.desired_all(), m.to_json())        # the genuine one: refused here (too large), as itself
    assert reports[-1].state == "rejected" and "accepts at most" in reports[-1].reason
    assert reports[-1].manifest == m.push_id


def test_push_is_not_failed_by_the_refusal_of_a_forged_copy(broker, start_agent, observe, fleet_models, keys):
    """14.4a: forged copies (unsigned; bad signature) of a manifest of the same model are
    retained and refused first; the device's status names that refusal. The genuine push
    installs the model and `keywire push` says so (it read the forged refusal as its answer)."""
    obs = observe(broker)
    start_agent(broker, "dev1")
    online(obs)
    m = build_manifest(fleet_models.v2.read_bytes(), load_private_key(keys[0]))
    obs.publish(T.device("dev1").desired, _unsigned(m).to_json(), retain=True)
    obs.publish(T.desired_all(), _bad_signature(m).to_json(), retain=True)
    obs.wait_for(lambda: len([p for p in progress(obs, m.sha256) if p["state"] == "rejected"]) >= 2,
                 what="both forgeries refused")
    obs.wait_for(lambda: (device_status(obs, "dev1") or {}).get("last_push", {}).get("state") == "rejected",
                 what="refusal in the retained status")
    r = push_to_device(broker, keys, fleet_models.v2)
    assert "active on 1/1 devices" in r.stdout, r.stdout
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 active")


def test_a_deferred_model_pushed_again_is_reported_by_its_own_outcome(broker, start_agent, observe, fleet_models,
                                                                      keys, tmp_path):
    """14.4c: a model rolled back after unclean stops (deferred) is refused when its old
    manifest is read again ("push it again to retry"), and that refusal is retained in the
    status; pushing it again installs it and `keywire push` reports it active."""
    obs = observe(broker)
    state = tmp_path / "state"
    store = ModelStore(state)
    a, b = fleet_models.base.read_bytes(), fleet_models.v2.read_bytes()
    m = build_manifest(b, load_private_key(keys[0]))
    store.adopt(a, ModelInfo("fleet-test", "1", sha256_hex(a)))
    store.install(b, ModelInfo("fleet-test", "2", m.sha256), issued_at=m.issued_at)
    for _ in range(MAX_UNCLEAN_STOPS):   # what MAX_UNCLEAN_STOPS kills in the trial window leave behind
        store.note_boot(RunEnd.UNCLEAN, "the agent was killed or lost power")
    assert store.state().deferred == (m.sha256,) and store.state().active.version == "1"
    for i, c in enumerate(split(b, m.chunk_size)):
        obs.publish(T.chunk(m.sha256, i), c, retain=True)
    obs.publish(T.device("dev1").desired, m.to_json(), retain=True)     # the push that brought it, still retained
    start_agent(broker, "dev1", state_dir=state)
    obs.wait_for(lambda: "push it again" in (device_status(obs, "dev1") or {}).get("last_push", {}).get("reason", ""),
                 what="the old manifest refused, in the status")
    assert model_version(obs) == "1"
    r = push_to_device(broker, keys, fleet_models.v2)
    assert "active on 1/1 devices" in r.stdout, r.stdout
    obs.wait_for(lambda: model_version(obs) == "2", what="v2 active")
    assert ModelStore(state).state().deferred == ()


def test_an_operators_rollback_does_not_blacklist_the_model(broker, start_agent, observe, fleet_models, keys,
                                                            tmp_path):
    """14.4d: `fleet command rollback` goes back to the previous model; a later push of the same
    model (same version, or a new --version) installs it again and is reported active."""
    obs = observe(broker)
    state = tmp_path / "state"
    start_agent(broker, "dev1", state_dir=state)
    online(obs)
    push_to_device(broker, keys, fleet_models.v2)
    for attempt, extra in enumerate(((), ("--version", "2b"))):
        cid = f"rb{attempt}"
        obs.publish(T.device("dev1").command, Command("rollback", cid).to_json())
        reply = obs.wait_for(lambda: next((x for x in obs.json_on("/dev1/reply") if x["id"] == cid), None),
                             what="rollback reply")
        assert reply["ok"], reply
        obs.wait_for(lambda: model_version(obs) == "1", what="rolled back to v1")
        st = ModelStore(state).state()
        assert st.rejected == () and st.active.version == "1"
        r = push_to_device(broker, keys, fleet_models.v2, "dev1", *extra)
        assert "active on 1/1 devices" in r.stdout and "rolled_back" not in r.stdout, r.stdout
        obs.wait_for(lambda: model_version(obs) == "2", what="v2 active again")
    assert ModelStore(state).state().rejected == ()
