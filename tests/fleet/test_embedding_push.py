"""A speech-embedding head over MQTT: installed like any model, refused (with the reason on
the device's status) when it was trained on another embedding."""
from __future__ import annotations

from keywire.protocol.sl_params import read_params, write_params

from .conftest import FLEET, device_status, push_to_device, run_keywire, wait_online


def test_embedding_head_installs_and_a_foreign_one_is_rejected(broker, start_agent, observe, keys,
                                                               embedding_head, tmp_path):
    obs = observe(broker)
    agent = start_agent(broker, "dev1")
    wait_online(obs, "dev1")
    data = embedding_head.read_bytes()
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(write_params(data, dict(read_params(data), version="7",
                                                **{"fe.embedding_sha256": "cd" * 32})))
    r = run_keywire("push", str(foreign), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", "dev1", "--wait", "60")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "rejected" in r.stdout and "trained on speech embedding cdcdcdcdcdcd" in r.stdout, r.stdout
    assert "trained on speech embedding" in (device_status(obs, "dev1") or {}).get("reason", "")
    r = push_to_device(broker, keys, embedding_head)     # active on the device, or it fails
    assert "active on 1/1" in r.stdout, r.stdout
    assert agent.alive
