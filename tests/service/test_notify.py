"""The real agent process talks sd_notify to a socket the test binds, like systemd would:
READY after audio and a first inference, WATCHDOG only while audio flows, STATUS, RELOADING
then READY on SIGHUP (with a new threshold in effect), STOPPING on SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from keywire.agent.systemd_notify import ServiceEnvironment, ServiceNotifier

from ..fixtures.speech import stream_of_words
from .agent_process import AgentProcess, NotifySocket

WORDS = ["yes", "seven", "hello", "marvin"]
WATCHDOG_USEC = 2_000_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    samples, _ = stream_of_words(WORDS, voices=["en-us", "en-gb"], gap_s=0.8)
    return samples


@pytest.fixture
def notify():
    sock = NotifySocket()
    yield sock
    sock.close()


def write_config(path: Path, model: Path, threshold: int) -> Path:
    path.write_text(f'model = "{model}"\nsource = "stdin"\njson_events = true\n'
                    f'[detection]\nthreshold = {threshold}\n')
    return path


def start(tmp_path: Path, model: Path, speech: np.ndarray, notify, threshold: int = 255) -> AgentProcess:
    config = write_config(tmp_path / "agent.toml", model, threshold)
    return AgentProcess(["run", "--config", str(config)], speech, notify, watchdog_usec=WATCHDOG_USEC)


def test_ready_watchdog_stall_and_stop(tmp_path, loudness_model, speech, notify):
    agent = start(tmp_path, loudness_model, speech, notify)
    try:
        ready = notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=60)
        assert "loudness" in ready.fields.get("STATUS", "")
        # No WATCHDOG before READY (the first inference proves the pipeline works).
        assert not notify.between("WATCHDOG", 0, ready.at)

        # Audio flows: pings keep arriving, about every half of WATCHDOG_USEC, never a full period apart.
        t0 = time.monotonic()
        time.sleep(4.0)
        flowing = notify.between("WATCHDOG", t0, time.monotonic())
        assert len(flowing) >= 3, [m.fields for m in notify.messages]
        assert np.diff([t0] + [m.at for m in flowing]).max() < WATCHDOG_USEC / 1e6

        # The source stalls (nothing written to stdin): pings stop, so systemd's watchdog would fire.
        agent.flowing.clear()
        time.sleep(0.5)  # audio already in the pipe drains
        t1 = time.monotonic()
        time.sleep(1.5 * WATCHDOG_USEC / 1e6)
        assert notify.between("WATCHDOG", t1, time.monotonic()) == []
        assert agent.proc.poll() is None

        # Audio comes back: so do the pings.
        agent.flowing.set()
        notify.wait_for(lambda m: "WATCHDOG" in m, timeout=5, after=time.monotonic())

        status = [m.fields["STATUS"] for m in notify.messages if "STATUS" in m]
        assert any("source stdin" in s and "detections" in s and "mqtt off" in s for s in status), status

        t2 = time.monotonic()
        agent.signal(signal.SIGTERM)
        notify.wait_for(lambda m: m.fields.get("STOPPING") == "1", timeout=5, after=t2)
        assert agent.wait(15) == 0
    finally:
        agent.close()


def test_sigterm_stops_promptly_while_the_source_is_stalled(tmp_path, loudness_model, speech, notify):
    agent = start(tmp_path, loudness_model, speech, notify)
    try:
        notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=60)
        agent.flowing.clear()
        time.sleep(1.5)  # the agent is now blocked reading stdin
        t0 = time.monotonic()
        agent.signal(signal.SIGTERM)
        notify.wait_for(lambda m: m.fields.get("STOPPING") == "1", timeout=5, after=t0)
        assert agent.wait(5) == 0
        assert time.monotonic() - t0 < 5
        assert not any("Traceback" in line for line in agent.stderr_lines), agent.stderr_lines
    finally:
        agent.close()


def test_sighup_reloads_threshold_with_reloading_then_ready(tmp_path, loudness_model, speech, notify):
    agent = start(tmp_path, loudness_model, speech, notify, threshold=255)
    try:
        notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=60)
        time.sleep(len(speech) / 16000 + 0.5)  # every word once: an average never exceeds 255
        assert agent.detections == []

        write_config(tmp_path / "agent.toml", loudness_model, threshold=100)
        t0 = time.monotonic()
        agent.signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: m.fields.get("RELOADING") == "1", timeout=5, after=t0)
        usec = int(reloading.fields["MONOTONIC_USEC"])
        assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 5
        ready = notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=10, after=reloading.at)

        # The new threshold is in effect: spoken words are detected, audio never stopped.
        deadline = time.monotonic() + len(speech) / 16000 + 2
        while time.monotonic() < deadline and not agent.detections_between(ready.at):
            time.sleep(0.1)
        detections = agent.detections_between(ready.at)
        assert detections and all(d["keyword"] == "speech" for d in detections)
        notify.wait_for(lambda m: "WATCHDOG" in m, timeout=5, after=ready.at)
        assert agent.proc.poll() is None
    finally:
        agent.close()


def test_failed_reload_keeps_running_and_reports_ready(tmp_path, loudness_model, speech, notify):
    agent = start(tmp_path, loudness_model, speech, notify, threshold=255)
    try:
        notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=60)
        (tmp_path / "agent.toml").write_text("model = [broken toml\n")
        t0 = time.monotonic()
        agent.signal(signal.SIGHUP)
        ready = notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=10, after=t0)
        assert "reload failed" in ready.fields.get("STATUS", "")
        notify.wait_for(lambda m: "WATCHDOG" in m, timeout=5, after=ready.at)
        assert agent.proc.poll() is None
    finally:
        agent.close()


def test_without_notify_socket_the_agent_is_silent(tmp_path, loudness_model, speech):
    agent = start(tmp_path, loudness_model, speech, notify=None, threshold=100)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not agent.detections:
            time.sleep(0.1)
        assert agent.detections, agent.stderr_lines
        agent.signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        assert not [line for line in agent.stderr_lines if "notify" in line.lower() or "journal" in line.lower()]
    finally:
        agent.close()


# --- ServiceNotifier on its own, with a real datagram socket --------------------------------

def _notifier(sock: NotifySocket, watchdog_usec: int = 200_000) -> ServiceNotifier:
    env = ServiceEnvironment.from_environ({"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": str(watchdog_usec)})
    return ServiceNotifier(env, send=None)


def test_watchdog_needs_both_audio_and_inference(notify, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)  # libsystemd reads it from the environment
    n = _notifier(notify, watchdog_usec=2)  # 1 us interval: every call may ping
    n.ready("up")
    assert n.heartbeat(1600, 1)
    assert not n.heartbeat(3200, 1), "audio without a completed inference (hung interpreter) must not ping"
    assert not n.heartbeat(1600, 2), "inference without new audio (stalled source) must not ping"
    assert n.heartbeat(3200, 2)
    notify.wait_for(lambda m: "WATCHDOG" in m, timeout=2)
    time.sleep(0.2)
    assert len([m for m in notify.messages if "WATCHDOG" in m]) == 2


def test_no_watchdog_before_ready_and_rate_limited(notify, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    n = _notifier(notify, watchdog_usec=10_000_000)
    assert not n.heartbeat(1600, 1)
    n.ready()
    assert n.heartbeat(3200, 2)
    assert not n.heartbeat(4800, 3), "pings come at most every half watchdog period"


def test_environment_parsing():
    env = ServiceEnvironment.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000",
                                           "WATCHDOG_PID": "1"}, pid=2)
    assert env.watchdog_usec == 0, "a watchdog meant for another process is not ours"
    env = ServiceEnvironment.from_environ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "7"}, pid=7)
    assert env.watchdog_interval_s == 10.0
    silent = ServiceNotifier(ServiceEnvironment.from_environ({}))
    assert not silent.enabled and not silent.heartbeat(1, 1)
    silent.ready("x")
    silent.stopping()


def test_plain_socket_sender_for_systems_without_systemd_python(notify):
    """The fallback sender speaks the same datagram protocol, also to abstract socket names."""
    from keywire.agent.systemd_notify import _socket_notify

    assert _socket_notify(notify.path, "READY=1\nSTATUS=up")
    m = notify.wait_for(lambda m: m.fields.get("READY") == "1", timeout=2)
    assert m.fields["STATUS"] == "up"
    name = f"kw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        assert _socket_notify("@" + name, "WATCHDOG=1")
        assert abstract.recv(100) == b"WATCHDOG=1"
    assert not _socket_notify("/nonexistent/notify.sock", "READY=1")
