"""Model push to many devices: time to reach 100 and 500 devices, bytes on the wire per device,
success rate with 10% of devices cut off mid-transfer.

Every simulated device is a real MQTT client (paho, own connection, own last will) running the
real device-side receiver (`PushReceiver`: windowed chunk subscriptions, per-chunk hash check,
staging on disk, signature check against the trusted key, atomic install into its own
`ModelStore`). Devices share a few processes. The host side is the real `PushEngine` behind
`keywire push`. The broker is a real mosquitto on a loopback port.

By default a device's activation verifies size + SHA-256 and installs atomically; `--self-test`
also loads the model into TFLite and runs it on silence and a reference clip (on a real fleet
every device does that in parallel on its own CPU; here they would all share this machine's).

    nice -n 10 .venv/bin/python benchmarks/push_fleet.py --devices 100 500 --cut 0 0.1
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------ device processes
def run_devices(ids: list[str], url: str, fleet: str, pub: str, state_root: str, cut: list[str], self_test: bool,
                ready: "mp.Queue", results: "mp.Queue", stop: "mp.Event") -> None:
    from keywire.agent.fleet.receiver import PushReceiver
    from keywire.agent.fleet.selftest import DeviceProfile, self_test as run_self_test
    from keywire.agent.fleet.store import ModelStore
    from keywire.protocol.errors import ModelRejected
    from keywire.protocol.manifest import sha256_hex
    from keywire.protocol.messages import ModelInfo, Status
    from keywire.protocol.mqtt_link import MqttLink, MqttSettings
    from keywire.protocol.signing import trusted_keys
    from keywire.protocol.topics import DeviceTopics

    trusted = trusted_keys([Path(pub)])
    profile = DeviceProfile()
    devices = []

    class Device:
        def __init__(self, device_id: str) -> None:
            self.id = device_id
            self.topics = DeviceTopics(fleet, device_id)
            self.store = ModelStore(Path(state_root) / device_id)
            self.bytes_in = 0          # PUBLISH payload + topic bytes received
            self.messages_in = 0
            self.active_at = 0.0
            self.cut = device_id in cut
            self.was_cut = False
            self.lock = threading.Lock()
            self.model = ModelInfo("base", "1", "0" * 64, ("yes", "no", "_unknown_", "_silence_"))
            self.link = MqttLink(MqttSettings(url=url, client_id=f"bench-{device_id}"), on_message=self.on_message,
                                 on_connect=self.on_connect, will=(self.topics.status, self.status(False), True))
            self.receiver = PushReceiver(self.topics, ("bench",), self.store, trusted, lambda: profile, self.link,
                                         self.activate, self.report, window=4)

        def status(self, online: bool) -> bytes:
            return Status(self.id, online, time.time(), self.model, groups=("bench",)).to_json()

        def on_connect(self) -> None:
            with self.lock:
                self.link.publish(self.topics.status, self.status(True), retain=True)
                self.receiver.on_connect()

        def on_message(self, topic: str, payload: bytes) -> None:
            with self.lock:
                self.bytes_in += len(payload) + len(topic.encode())
                self.messages_in += 1
                if topic.endswith("/desired") or topic.endswith("desired"):
                    self.receiver.handle_desired(topic, payload)
                elif "/chunk/" in topic:
                    self.receiver.handle_chunk(topic, payload)
                    if self.cut and not self.was_cut and self.receiver.chunks_received >= 2:
                        self.was_cut = True  # the network drops mid-transfer (no DISCONNECT)
                        s = self.link.client.socket()
                        if s is not None:
                            s.shutdown(socket.SHUT_RDWR)

        def activate(self, data: bytes, m) -> str:
            if self_test:
                run_self_test(data, m, profile)
            elif len(data) != m.size or sha256_hex(data) != m.sha256:
                raise ModelRejected("assembled model does not match the manifest")
            self.model = ModelInfo(m.name, m.version, m.sha256, m.classes)
            self.store.install(data, self.model, m.issued_at)
            self.active_at = time.time()
            return ""  # no note for the 'active' report

        def report(self, p) -> None:
            self.link.publish(self.topics.progress, p.to_json())
            if p.state in ("active", "rejected"):
                self.link.publish(self.topics.status, self.status(True), retain=True)

    for d in ids:
        dev = Device(d)
        devices.append(dev)
        dev.link.start()
    for dev in devices:
        dev.link.wait_connected(60)
    ready.put(len([d for d in devices if d.link.connected]))
    stop.wait()
    results.put([{"id": d.id, "bytes_in": d.bytes_in, "messages_in": d.messages_in, "active_at": d.active_at,
                  "cut": d.was_cut, "received": d.receiver.chunks_received} for d in devices])
    for d in devices:
        d.link.close()


# ------------------------------------------------------------------ broker counters
def sys_bytes(url_host: str, port: int) -> tuple[int, int]:
    """mosquitto's own totals ($SYS/broker/bytes/sent, received), refreshed every second."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: dict[str, int] = {}
    ev = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sys-{os.getpid()}-{time.time()}")

    def on_msg(cl, u, m):
        got[m.topic.rsplit("/", 1)[-1]] = int(m.payload)
        if len(got) == 2:
            ev.set()

    c.on_message = on_msg
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([("$SYS/broker/bytes/sent", 0), ("$SYS/broker/bytes/received", 0)])
    c.connect(url_host, port)
    c.loop_start()
    ev.wait(5)
    c.loop_stop()
    c.disconnect()
    return got.get("sent", 0), got.get("received", 0)


# ------------------------------------------------------------------ one scenario
def scenario(n: int, cut_fraction: float, procs: int, model: Path, workdir: Path, self_test: bool,
             wait_s: float) -> dict:
    from keywire.protocol.mqtt_link import MqttSettings
    from keywire.protocol.signing import generate_keys, load_private_key
    from keywire.host.push import PushEngine, PushOptions, PushTarget
    from tests.fixtures.broker import Broker

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    priv, pub = generate_keys(workdir / "keys")
    broker = Broker(workdir / "broker", persist=False, extra_config=["max_queued_messages 1000"]).start()
    ids = [f"d{i:04d}" for i in range(n)]
    cut = sorted(random.Random(n).sample(ids, int(round(n * cut_fraction))))
    ctx = mp.get_context("spawn")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=run_devices, args=(ids[k::procs], broker.url, "bench", str(pub),
                                                      str(workdir / "state"), cut, self_test, ready, results, stop))
               for k in range(procs)]
    for w in workers:
        w.start()
    connected = sum(ready.get(timeout=300) for _ in workers)
    time.sleep(1.5)
    sent0, recv0 = sys_bytes(broker.host, broker.port)
    engine = PushEngine(MqttSettings(url=broker.url, client_id="bench-host"), "bench", load_private_key(priv))
    t0 = time.time()
    result = engine.push(model.read_bytes(), PushTarget(group="bench"), PushOptions(wait_s=wait_s, settle_s=1.0))
    elapsed = time.time() - t0
    time.sleep(2.5)  # $SYS counters refresh every second
    sent1, recv1 = sys_bytes(broker.host, broker.port)
    stop.set()
    per_device = [r for _ in workers for r in results.get(timeout=120)]
    for w in workers:
        w.join(30)
    broker.stop()
    size = model.stat().st_size
    active = [d for d in result.devices.values() if d.ok]
    times = sorted(r["active_at"] - t0 for r in per_device if r["active_at"])
    wire = (sent1 - sent0 + recv1 - recv0)
    payload_in = sum(r["bytes_in"] for r in per_device) / max(1, len(per_device))
    return {
        "devices": n, "connected": connected, "cut_mid_transfer": sum(r["cut"] for r in per_device),
        "model_bytes": size, "chunks": result.manifest.n_chunks, "self_test": self_test,
        "success_rate": round(len(active) / n, 4), "push_seconds": round(elapsed, 2),
        "time_to_all_s": round(times[-1], 2) if len(times) == n else None,
        "time_to_50pct_s": round(times[len(times) // 2], 2) if times else None,
        "broker_bytes_per_device": round(wire / n),
        "wire_overhead_pct": round(100.0 * (wire / n - size) / size, 2),
        "device_payload_bytes_per_device": round(payload_in),
        "payload_overhead_pct": round(100.0 * (payload_in - size) / size, 2),
        "failures": {d.device_id: d.reason for d in result.failures()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--cut", type=float, nargs="+", default=[0.0, 0.1], help="fractions cut off mid-transfer")
    ap.add_argument("--procs", type=int, default=4, help="processes the simulated devices share")
    ap.add_argument("--self-test", action="store_true", help="devices also run the TFLite self-test")
    ap.add_argument("--wait", type=float, default=600.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from tests.fleet.models import build_model

    model = build_model(REPO / ".cache" / "tests" / "fleet" / "base.tflite")
    from keywire.protocol.sl_params import merge_params

    pushed = REPO / ".cache" / "bench" / "push_v2.tflite"
    if not pushed.exists():
        pushed.parent.mkdir(parents=True, exist_ok=True)
        pushed.write_bytes(merge_params(model.read_bytes(), {"version": "2"}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="keywire-push-bench-") as tmp:
        for n in a.devices:
            for cut in a.cut:
                r = scenario(n, cut, a.procs, pushed, Path(tmp) / f"{n}-{cut}", a.self_test, a.wait)
                rows.append(r)
                if a.json:
                    print(json.dumps(r), flush=True)
                else:
                    print(f"{n:>4} devices, {cut * 100:>3.0f}% cut mid-transfer ({r['cut_mid_transfer']} cut): "
                          f"success {r['success_rate'] * 100:.1f}%, all active after {r['time_to_all_s']} s "
                          f"(half after {r['time_to_50pct_s']} s), broker traffic {r['broker_bytes_per_device']} B/device "
                          f"for a {r['model_bytes']} B model in {r['chunks']} chunks: overhead {r['wire_overhead_pct']}% "
                          f"(payload+topic only: {r['payload_overhead_pct']}%); host command done after {r['push_seconds']} s", flush=True)
                    for dev, why in list(r["failures"].items())[:10]:
                        print(f"      FAILED {dev}: {why}")
    return 0 if all(r["success_rate"] == 1.0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
