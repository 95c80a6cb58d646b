"""`keywire-agent run` with a board from the TOML config: board detections reach MQTT with the
board's identity; without a local model the agent's LEDs mirror the board's."""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .conftest import agent_cmd, env, read_json_lines, run_agent_during, wait_for


def _watch_leds(leds: Path, stop: threading.Event, seen: dict) -> None:
    while not stop.is_set():
        for name in ("red", "green"):
            try:
                value = (leds / name / "brightness").read_text().strip()
                if value:  # empty while the agent rewrites the file
                    seen[name].add(value)
            except OSError:
                pass
        stop.wait(0.005)


def test_board_detections_reach_mqtt_with_the_board_identity(broker, emulator, word_models, words_wav, tmp_path):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--tail-s", "2")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'model = "{word_models[0]}"\nsource = "silence"\ndevice_id = "pi-board"\n'
                   f'state_dir = "{tmp_path / "state"}"\n'
                   f'[board]\nport = "serial:{emu.port}"\nmode = "detect"\n'
                   f'[mqtt]\nurl = "{broker.url}"\nfleet = "boardtest"\n')
    events: list[dict] = []
    statuses: list[dict] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, msg: (statuses if msg.topic.endswith("/status") else events).append(
        json.loads(msg.payload))
    client.connect("127.0.0.1", int(broker.url.rsplit(":", 1)[1]))
    client.subscribe("keywire/boardtest/device/+/event", qos=1)
    client.subscribe("keywire/boardtest/device/+/status", qos=1)
    client.loop_start()
    agent = subprocess.Popen([*agent_cmd(), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env())
    try:
        stats = emu.wait_stats()
        assert wait_for(lambda: len(events) >= 3, 10), agent.stderr
    finally:
        agent.terminate()
        out, err = agent.communicate(timeout=10)
        client.loop_stop()
        client.disconnect()
    assert stats["board"]["detections"] == 3
    assert [(e["keyword"], e["source"], e["device_id"]) for e in events] == [
        ("speech", "board:brd2601-emulator", "pi-board")] * 3, err
    assert len(read_json_lines(out)) == 3
    boards = [s["board"] for s in statuses if s.get("online") and s.get("board")]
    assert boards and boards[-1]["port"] == emu.port and boards[-1]["mode"] == "detect"


def test_board_only_run_mirrors_the_board_leds(emulator, word_models, words_wav, tmp_path):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--tail-s", "1.5")
    leds = tmp_path / "leds"
    for name in ("red", "green"):
        (leds / name).mkdir(parents=True)
        (leds / name / "brightness").write_text("0")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[board]\nport = "serial:{emu.port}"\n'
                   f'[led]\nred = "red"\ngreen = "green"\nleds_dir = "{leds}"\n')
    seen: dict = {"red": set(), "green": set()}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_leds, args=(leds, stop, seen))
    watcher.start()
    agent = subprocess.Popen([*agent_cmd(), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env())
    try:
        stats = emu.wait_stats()
    finally:
        stop.set()
        watcher.join()
        agent.terminate()
        out, err = agent.communicate(timeout=10)
    assert len(read_json_lines(out)) == 3, err
    assert stats["red_on"] == 3 and stats["green_on"] >= 3
    assert seen["red"] == {"0", "1"} and seen["green"] == {"0", "1"}


def test_board_only_run_refuses_mqtt_without_a_model(tmp_path):
    r = subprocess.run([*agent_cmd(), "run", "--board", "serial:/dev/ttyACM9", "--mqtt", "mqtt://127.0.0.1:1",
                        "--fleet", "x", "--state-dir", str(tmp_path)], capture_output=True, text=True, env=env(),
                       timeout=60)
    assert r.returncode == 2 and "--model" in r.stderr and r.stderr.count("\n") == 1


def test_detect_mode_gives_the_board_the_agents_model(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--tail-s", "1.5")
    stats, out, err = run_agent_during(emu, "--board", f"serial:{emu.port}", "--model", str(word_models[1]),
                                       "--source", "silence")
    events = read_json_lines(out)
    assert stats["models_activated"] == 1, err
    assert events and events[-1]["model_name"] == "words-b"
    assert events[-1]["model_sha256"] and events[-1]["source"] == "board:brd2601-emulator"


def test_board_only_run_tells_systemd_ready_and_pings_the_watchdog(emulator, word_models, word_wav, tmp_path):
    import socket

    emu = emulator("--audio", str(word_wav), "--model", str(word_models[0]), "--tail-s", "2.5")
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    agent = subprocess.Popen([*agent_cmd(), "run", "--board", f"serial:{emu.port}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(env(), NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000"))
    messages: list[str] = []
    try:
        while emu.proc.poll() is None:
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        sock.close()
    assert any(msg.startswith("READY=1") and "board brd2601-emulator connected" in msg for msg in messages), messages
    assert sum(msg == "WATCHDOG=1" for msg in messages) >= 3
    assert messages[-1].startswith("STOPPING=1")
