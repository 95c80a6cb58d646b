"""Fleet test fixtures: real models, signing keys, real `keywire-agent run` processes, an observer."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from keywire.protocol.signing import generate_keys

from .models import build_model, variant

FLEET = "t"


@dataclass(frozen=True)
class FleetModels:
    base: Path          # v1, ~250 kB int8, 16 kHz microfrontend 49x32
    v2: Path            # same network, version "2" (different sha256)
    v3: Path
    more: tuple[Path, ...]  # versions 4 and 5
    wrong_shape: Path   # fe.window_step_ms=10: 97 frames declared, the network takes 49
    wrong_rate: Path    # 8 kHz audio: this device delivers 16 kHz
    bad_classes: Path   # declares 3 classes, the network outputs 4: fails the self-test
    three_classes: Path  # a sound model with 3 classes (a 4-value threshold list does not fit it)


@pytest.fixture(scope="session")
def fleet_models(cache_dir: Path) -> FleetModels:
    d = cache_dir / "fleet"
    base = build_model(d / "base.tflite")
    return FleetModels(
        base=base, v2=variant(base, d / "v2.tflite", version="2"), v3=variant(base, d / "v3.tflite", version="3"),
        more=tuple(variant(base, d / f"v{v}.tflite", version=str(v)) for v in (4, 5)),
        wrong_shape=variant(base, d / "wrong_shape.tflite", version="ws", fe__window_step_ms=10),
        wrong_rate=variant(base, d / "wrong_rate.tflite", version="wr", fe__sample_rate_hz=8000,
                           fe__filterbank_upper_band_limit=3800.0),
        bad_classes=variant(base, d / "bad_classes.tflite", version="bc", classes=["yes", "no", "_unknown_"]),
        three_classes=build_model(d / "three_classes.tflite", version="3c", classes=("yes", "no", "_unknown_")))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """(signing.key, signing.pub) generated for this test."""
    return generate_keys(tmp_path / "keys")


class AgentProcess:
    """A real `keywire-agent run` with the fleet component, in its own process."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self.stdout_lines: list[str] = []
        self._reader: Optional[threading.Thread] = None

    def start(self) -> "AgentProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "keywire.agent.cli", *self.args], stdout=subprocess.PIPE,
                                     stderr=self._log, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.stdout_lines.append(line.decode(errors="replace").strip())

    def detections(self) -> list[dict]:
        out = []
        for line in list(self.stdout_lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self._reader:
            self._reader.join(5)

    def stop(self) -> int:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._reader:
            self._reader.join(5)
        return self.proc.returncode if self.proc else 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_agent(tmp_path: Path, fleet_models: FleetModels, keys) -> Iterator[Callable[..., AgentProcess]]:
    """`start_agent(broker, device_id, extra_args=[], config={})` -> a running AgentProcess."""
    started: list[AgentProcess] = []

    def start(broker, device_id: str = "dev1", extra: tuple[str, ...] = (), model: Optional[Path] = None,
              mqtt_config: Optional[dict] = None, state_dir: Optional[Path] = None,
              detect_every_ms: int = 300) -> AgentProcess:
        state = state_dir or tmp_path / f"state-{device_id}"
        cfg = tmp_path / f"agent-{device_id}.toml"
        mc = {"telemetry_s": 1.0, **(mqtt_config or {})}
        cfg.write_text("[mqtt]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in mc.items()))
        args = ["run", "--config", str(cfg), "--model", str(model or fleet_models.base), "--source", "silence",
                "--mqtt", broker.url, "--fleet", FLEET, "--device-id", device_id, "--state-dir", str(state),
                "--trusted-key", str(keys[1]),
                # an untrained model on silence: threshold 0 makes a steady stream of real detections
                "--threshold", "0", "--minimum-count", "0", "--suppression-ms", str(detect_every_ms),
                *extra]
        a = AgentProcess(args, tmp_path / f"agent-{device_id}.log").start()
        started.append(a)
        return a

    try:
        yield start
    finally:
        for a in started:
            a.stop()


class Observer:
    """An independent MQTT client (plain paho) recording every message under a filter."""

    def __init__(self, broker, topic: str = "#", persistent: bool = False, username: str = "",
                 password: str = "") -> None:
        """`persistent`: a session the broker keeps (and queues QoS 1 messages for) across
        disconnects and broker restarts, so the observer itself misses nothing."""
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{os.getpid()}-{id(self)}",
                                  clean_session=not persistent)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, c, u, m) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def json_on(self, suffix: str) -> list[dict]:
        out = []
        with self.lock:
            msgs = list(self.messages)
        for t, p, _ in msgs:
            if t.endswith(suffix) and p:
                try:
                    out.append(json.loads(p))
                except ValueError:
                    pass
        return out

    def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def observe() -> Iterator[Callable[..., Observer]]:
    made: list[Observer] = []

    def make(broker, topic: str = "#", persistent: bool = False, **login: str) -> Observer:
        o = Observer(broker, topic, persistent, **login)
        made.append(o)
        return o

    try:
        yield make
    finally:
        for o in made:
            o.close()


def device_status(obs: Observer, device: str) -> Optional[dict]:
    st = [s for s in obs.json_on(f"/device/{device}/status")]
    return st[-1] if st else None


def run_keywire(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The host CLI `keywire ...` in its own process."""
    return subprocess.run([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=timeout)


def wait_online(obs: Observer, device: str) -> None:
    obs.wait_for(lambda: (device_status(obs, device) or {}).get("online"), what=f"{device} online")


def push_to_device(broker, keys, model: Path, device: str = "dev1", *extra: str) -> subprocess.CompletedProcess:
    """`keywire push MODEL --device DEVICE` against the test broker; asserts it succeeded."""
    r = run_keywire("push", str(model), "--mqtt", broker.url, "--fleet", FLEET, "--key", str(keys[0]),
                    "--device", device, "--wait", "60", *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return r
