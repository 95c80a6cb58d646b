"""Kill -9 soak: a real agent and a real mosquitto killed again and again while detections
flow and models are pushed; counts events lost and duplicated, and installs that survived.

    .venv/bin/python benchmarks/kill_soak.py --kills 30 --installs 8

Each round waits 1-3 s, then SIGKILLs the agent or the broker (alternating, in a seeded random
order) and starts it again. Every `--installs`-th agent kill lands 0.2-1.5 s after a
`keywire push` of a new model version began (mid-install). Events: every detection the agent
printed (its stdout, written just after it is spooled) must reach an independent subscriber
with a persistent session; "lost" counts those that never do. "In flight at a kill" counts
the last detection printed before a kill that never arrived, reported apart (with the spool
wired before stdout it should stay 0; "unknown delivered" counts the opposite cut: spooled,
delivered, never printed). "Duplicates" counts extra deliveries of an id
(QoS 1 re-delivery after a lost PUBACK; consumers drop them by event_id). Installs: after
each mid-install kill the restarted agent's store must name a complete model whose SHA-256
is its file name, and the agent must come back online.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from keywire.protocol.signing import generate_keys  # noqa: E402
from keywire.protocol.sl_params import merge_params  # noqa: E402
from tests.fixtures.broker import Broker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / ".cache" / "tests" / "fleet" / "base.tflite"   # the fleet tests' model: detects on silence
FLEET, DEVICE = "soak", "dev1"
BIN = Path(sys.executable).parent


class Subscriber:
    """Persistent-session QoS 1 subscriber: the broker queues events for it while it is away."""

    def __init__(self, broker: Broker) -> None:
        self.ids: list[str] = []
        self.online = False
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}", clean_session=False)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"keywire/{FLEET}/device/+/event", 1), (f"keywire/{FLEET}/device/+/status", 1)])
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(1, 2)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on_message(self, c, u, m) -> None:
        try:
            d = json.loads(m.payload)
        except ValueError:
            return
        with self.lock:
            if m.topic.endswith("/event"):
                self.ids.append(d["event_id"])
            elif m.topic.endswith("/status"):
                self.online = bool(d.get("online"))

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class Agent:
    """`keywire-agent run` on silence, detecting every `every_ms` (an untrained model with
    threshold 0 detects steadily); records printed event ids."""

    def __init__(self, broker: Broker, state: Path, pub: Path, log: Path, every_ms: int) -> None:
        self.args = [str(BIN / "keywire-agent"), "run", "--model", str(MODEL), "--source", "silence",
                     "--mqtt", broker.url, "--fleet", FLEET, "--device-id", DEVICE, "--state-dir", str(state),
                     "--trusted-key", str(pub), "--threshold", "0", "--minimum-count", "0",
                     "--suppression-ms", str(every_ms)]
        self.log = log
        self.printed: list[str] = []
        self.last_before_kill: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=open(self.log, "ab"),
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                self.printed.append(json.loads(line)["event_id"])
            except (ValueError, KeyError):
                pass

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        assert self._reader is not None
        self._reader.join(5)
        if self.printed:
            self.last_before_kill.append(self.printed[-1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def model_intact(state: Path) -> bool:
    """current.json names an active model whose file is complete (SHA-256 = its name)."""
    models = state / "models"
    try:
        cur = json.loads((models / "current.json").read_bytes())
        sha = cur["active"]["sha256"]
        data = (models / f"{sha}.tflite").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return hashlib.sha256(data).hexdigest() == sha


def wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=30, help="kill -9s in all (agent and broker)")
    p.add_argument("--installs", type=int, default=4, help="every Nth agent kill lands mid-install (0: none)")
    p.add_argument("--every-ms", type=int, default=150, help="detection period on silence")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", help="keep files here (default: a temporary folder)")
    a = p.parse_args()
    if not MODEL.exists():
        from tests.fleet.models import build_model  # TensorFlow in a subprocess, once

        build_model(MODEL)
    rng = random.Random(a.seed)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="keywire-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    key, pub = generate_keys(work / "keys", overwrite=True)
    broker = Broker(work / "broker").start()
    sub = Subscriber(broker)
    state = work / "state"
    agent = Agent(broker, state, pub, work / "agent.log", a.every_ms)
    agent.start()
    agent_kills = broker_kills = installs = installs_ok = installs_active = 0
    pushes: list[subprocess.Popen] = []
    version = 1
    start = time.monotonic()
    try:
        wait(lambda: sub.online and agent.printed, 60)
        for i in range(a.kills):
            time.sleep(rng.uniform(1.0, 3.0))
            if rng.random() < 0.5:
                agent_kills += 1
                mid_install = a.installs and agent_kills % a.installs == 0
                if mid_install:
                    version += 1
                    m = work / f"model-v{version}.tflite"
                    m.write_bytes(merge_params(MODEL.read_bytes(), {"version": str(version)}))
                    pushes.append(subprocess.Popen(
                        [str(BIN / "keywire"), "push", str(m), "--mqtt", broker.url, "--fleet", FLEET,
                         "--key", str(key), "--device", DEVICE, "--wait", "120"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                    time.sleep(rng.uniform(0.2, 1.5))
                agent.kill()
                if mid_install:
                    installs += 1
                    installs_ok += model_intact(state)
                agent.start()
                if mid_install:
                    wait(lambda: sub.online, 30)
            else:
                broker_kills += 1
                broker.kill()
                time.sleep(rng.uniform(0.2, 2.0))
                broker.start()
            print(f"round {i + 1}/{a.kills}: {agent_kills} agent and {broker_kills} broker kills, "
                  f"{len(agent.printed)} detections", file=sys.stderr, flush=True)
        # Let everything drain: the agent keeps running, the backlog goes out.
        raised = list(agent.printed)
        wait(lambda: set(raised) - set(agent.last_before_kill) <= set(sub.ids), 120)
        time.sleep(3)  # the last detection printed before a kill may still come
        for push in pushes:
            try:
                push.wait(150)
            except subprocess.TimeoutExpired:
                push.kill()
        installs_active = sum(push.returncode == 0 for push in pushes)
    finally:
        agent.stop()
        sub.close()
        broker.stop()
    delivered = set(sub.ids)
    missing = [e for e in raised if e not in delivered]
    in_flight = [e for e in missing if e in agent.last_before_kill]
    result = {
        "agent_kills": agent_kills, "broker_kills": broker_kills, "detections": len(raised),
        "lost": len(missing) - len(in_flight), "in_flight_at_kill": len(in_flight),
        "duplicates": len(sub.ids) - len(delivered), "unknown_delivered": len(delivered - set(agent.printed)),
        "mid_install_kills": installs, "model_intact_after_kill": installs_ok,
        "pushes_reported_active": installs_active, "model_intact_at_end": model_intact(state),
        "seconds": round(time.monotonic() - start, 1),
    }
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and installs_ok == installs and result["model_intact_at_end"] else 1


if __name__ == "__main__":
    sys.exit(main())
