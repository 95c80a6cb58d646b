"""Security: the shipped ACL (verbatim) confines devices; TLS with client certificates."""
from __future__ import annotations

import subprocess
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from keywire.protocol.manifest import build_manifest
from keywire.protocol.signing import load_private_key
from keywire.protocol.topics import FleetTopics

from tests.fixtures.broker import free_port
from tests.fixtures.paths import REPO

from .conftest import FLEET, device_status, run_keywire
from .tls import make_pki

T = FleetTopics(FLEET)
ACL = REPO / "systemd" / "mosquitto-keywire.acl"


def _client(port: int, user: str, password: str = "", tls: dict | None = None, cid: str = "") -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid or f"{user}-raw")
    if password:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=str(tls["ca"]), certfile=str(tls[f"{user}.crt"]), keyfile=str(tls[f"{user}.key"]))
    return c


def test_shipped_acl_confines_devices_with_passwords(broker_factory, start_agent, observe, fleet_models, keys,
                                                    tmp_path):
    pw = tmp_path / "passwd"
    for i, user in enumerate(("keywire-host", "dev1", "dev2")):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, f"{user}-secret"],
                       check=True, capture_output=True)
    b = broker_factory(anonymous=False, extra_config=[f"password_file {pw}", f"acl_file {ACL}",
                                                      "message_size_limit 131072"])
    obs = observe(b, "keywire/#", username="keywire-host", password="keywire-host-secret")
    agent = start_agent(b, "dev1", mqtt_config={"username": "dev1", "password": "dev1-secret"})
    obs.wait_for(lambda: (s := device_status(obs, "dev1")) and s["online"], what="dev1 online under ACL")
    # dev2 tries everything a rogue device could: forge dev1's events, publish models and commands
    rogue = _client(b.port, "dev2", "dev2-secret")
    rogue.connect(b.host, b.port)
    rogue.loop_start()
    data = fleet_models.v3.read_bytes()
    m = build_manifest(data, load_private_key(keys[0]))
    forged = [(T.device("dev1").event, b'{"v":1,"type":"detection","keyword":"forged"}'),
              (T.device("dev1").desired, m.to_json()), (T.desired_all(), m.to_json()),
              (T.chunk(m.sha256, 0), data[:32768]), (T.device("dev1").command, b'{"v":1,"type":"command","action":"rollback"}'),
              (T.device("dev1").status, b'{"v":1,"type":"status","device_id":"dev1","online":false}')]
    for topic, payload in forged:
        rogue.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    rogue.publish(T.device("dev2").event, b'{"v":1,"type":"detection","keyword":"own"}', qos=1).wait_for_publish(5)
    time.sleep(1.0)
    seen = {t: p for t, p, _ in obs.messages}
    assert T.device("dev2").event in seen                     # its own topic works
    for topic, payload in forged:
        assert all(p != payload for t, p, _ in obs.messages if t == topic), f"ACL let dev2 write {topic}"
    assert device_status(obs, "dev1")["online"] and agent.alive
    # the host can push through the same ACL; the device reads chunks and manifest, reports back
    r = run_keywire("push", str(fleet_models.v2), "--mqtt", b.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", "dev1", "--wait", "30", "--username", "keywire-host", "--password",
                    "keywire-host-secret")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_keywire("fleet", "status", "--mqtt", b.url, "--fleet", FLEET, "--username", "dev2", "--password", "nope")
    assert r.returncode != 0 and "refused" in r.stderr
    rogue.loop_stop()


def test_tls_client_certificates(broker_factory, start_agent, fleet_models, keys, tmp_path):
    pki = make_pki(tmp_path / "pki", ("dev1", "keywire-host"))
    tls_port = free_port()
    b = broker_factory(anonymous=False, extra_config=[
        f"acl_file {ACL}", f"listener {tls_port} 127.0.0.1", f"cafile {pki['ca']}",
        f"certfile {pki['server.crt']}", f"keyfile {pki['server.key']}", "require_certificate true",
        "use_identity_as_username true"])
    url = f"mqtts://127.0.0.1:{tls_port}"
    agent = start_agent(b, "dev1", extra=("--mqtt", url),
                        mqtt_config={"ca": str(pki["ca"]), "cert": str(pki["dev1.crt"]), "key": str(pki["dev1.key"])})
    tls = ("--ca", str(pki["ca"]), "--cert", str(pki["keywire-host.crt"]), "--cert-key", str(pki["keywire-host.key"]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = run_keywire("fleet", "status", "--mqtt", url, "--fleet", FLEET, "--json", *tls)
        if r.returncode == 0 and '"online": true' in r.stdout:
            break
        time.sleep(0.5)
    assert r.returncode == 0 and '"dev1"' in r.stdout and '"online": true' in r.stdout, r.stdout + r.stderr
    r = run_keywire("push", str(fleet_models.v2), "--mqtt", url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", "dev1", "--wait", "30", *tls)
    assert r.returncode == 0, r.stdout + r.stderr
    # without a client certificate the broker refuses the TLS handshake
    r = run_keywire("fleet", "status", "--mqtt", url, "--fleet", FLEET, "--ca", str(pki["ca"]))
    assert r.returncode != 0 and "cannot connect" in r.stderr
    assert agent.alive
