"""Fleet CLI edges against a real broker and agent: a pushed model the runtime cannot allocate
is refused without a traceback; `fleet command --json`, `fleet status --timeout`, empty
`--threshold-list` items."""
from __future__ import annotations

import dataclasses
import json

from keywire.protocol.errors import ExitCode
from keywire.protocol.manifest import build_manifest, sha256_hex, split
from keywire.protocol.signing import load_private_key
from keywire.protocol.topics import FleetTopics
from keywire.training.bundled import model_path
from tests.fixtures.mutated_tflite import with_huge_input

from .conftest import FLEET, run_keywire
from .test_push_faults import model_version, online, wait_state

T = FleetTopics(FLEET)


def test_pushed_model_with_a_huge_input_is_refused_without_traceback(broker, start_agent, observe, fleet_models,
                                                                     keys, tmp_path):
    obs = observe(broker)
    agent = start_agent(broker, "dev1")
    online(obs)
    # on_off with a 2^30-frame input: the runtime fails to allocate it with an empty message
    data = with_huge_input(model_path("on_off"), tmp_path / "huge.tflite").read_bytes()
    # The host refuses to sign such a model; a signed manifest for it is made by hand.
    key = load_private_key(keys[0])
    m = build_manifest(model_path("on_off").read_bytes(), key, version="7")
    chunks = list(split(data, m.chunk_size))
    m = dataclasses.replace(m, sha256=sha256_hex(data), size=len(data), chunks=tuple(sha256_hex(c) for c in chunks),
                            signature="").signed(key)
    for i, c in enumerate(chunks):
        obs.publish(T.chunk(m.sha256, i), c, retain=True)
    obs.publish(T.device("dev1").desired, m.to_json(), retain=True)
    p = wait_state(obs, m.sha256, "rejected", timeout=60)
    assert "cannot load this model" in p["reason"], p
    assert "with no message" in p["reason"] and "list index out of range" not in p["reason"], p
    assert model_version(obs) == "1"
    assert agent.alive
    assert "Traceback" not in agent.log(), agent.log()[-3000:]


def test_fleet_command_json_and_status_timeout(broker, start_agent, observe):
    obs = observe(broker)
    start_agent(broker, "dev1")
    online(obs)
    r = run_keywire("fleet", "command", "status", "--device", "dev1", "--mqtt", broker.url, "--fleet", FLEET,
                    "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    reply = json.loads(r.stdout)
    assert reply["device"] == "dev1" and reply["action"] == "status" and reply["ok"] is True, reply
    r = run_keywire("fleet", "command", "set_detection", "--threshold", "200", "--device", "nobody",
                    "--mqtt", broker.url, "--fleet", FLEET, "--json", "--timeout", "1")
    assert r.returncode != 0 and "no reply from nobody" in r.stderr and r.stdout == "", r.stdout + r.stderr
    r = run_keywire("fleet", "status", "--mqtt", broker.url, "--fleet", FLEET, "--json", "--timeout", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [row["device_id"] for row in json.loads(r.stdout)] == ["dev1"]


def test_fleet_status_timeout_bounds_the_connection():
    """Nothing listens on port 1: the connection fails within the timeout, in one line."""
    r = run_keywire("fleet", "status", "--mqtt", "mqtt://127.0.0.1:1", "--fleet", FLEET, "--timeout", "2",
                    timeout=30)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "cannot connect" in r.stderr, r.stderr


def test_threshold_list_with_an_empty_item_is_not_sent():
    r = run_keywire("fleet", "command", "set_detection", "--threshold-list", "1,,2", "--device", "dev1",
                    "--mqtt", "mqtt://127.0.0.1:1", "--fleet", FLEET)
    assert r.returncode == ExitCode.CONFIG, r.stderr
    assert r.stderr.count("\n") == 1 and "empty item" in r.stderr, r.stderr
