"""Device text never reaches the operator's terminal raw: escape sequences, newlines and
invisible characters in what devices publish are shown as visible escapes, one line per item
(`keywire fleet status`, `keywire watch`, `keywire fleet command`), over a real broker."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from keywire.protocol.text import SafeLogText, printable

from .conftest import FLEET, run_keywire

EVIL = "\x1b[2J\x1b]0;owned\x07kitchen\nkitchen   yes   forged\r\u202eevil\u200b\\x1b"


def test_printable_escapes_every_invisible_character_and_bounds_length():
    out = printable(EVIL)
    assert out == ("\\x1b[2J\\x1b]0;owned\\x07kitchen\\nkitchen   yes   forged\\r\\u202eevil\\u200b\\\\x1b")
    assert out.isprintable()
    assert printable("ok \u00e9\u4e2d") == "ok \u00e9\u4e2d"            # ordinary text unchanged
    assert printable("\ud800x") == "\\ud800x"                            # lone surrogate from JSON
    assert printable(b"\xff\n") == "\\\\xff\\n"
    long = printable("\x1b" * 1000, limit=50)
    assert len(long) <= 53 and long.endswith("...") and long.isprintable()


def test_safe_log_filter_makes_each_record_one_visible_line():
    import logging
    rec = logging.LogRecord("x", logging.WARNING, __file__, 1, "board label %s", (EVIL,), None)
    assert SafeLogText().filter(rec)
    line = logging.Formatter("%(message)s").format(rec)
    assert "\n" not in line and "\x1b" not in line and line.startswith("board label \\x1b[2J")


def _status(device: str, **fields) -> bytes:
    msg = {"v": 1, "type": "status", "device_id": device, "online": True, "time": time.time(),
           "model": {"name": "m\x1b[31m", "version": "1\n2", "sha256": "ab" * 32, "classes": ["yes"]},
           "groups": [], "reason": EVIL, **fields}
    return json.dumps(msg).encode()


def test_fleet_status_and_command_show_device_text_escaped(broker, observe):
    obs = observe(broker)
    obs.publish(f"keywire/{FLEET}/device/dev1/status", _status("dev1"), retain=True)
    obs.publish(f"keywire/{FLEET}/device/ev\u202eil/status", _status("ev\u202eil", reason="fine"), retain=True)
    r = run_keywire("fleet", "status", "--mqtt", broker.url, "--fleet", FLEET)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert "\x1b" not in r.stdout and "\r" not in r.stdout and "\u202e" not in r.stdout
    # One line per device, whatever the table style; the forged row never starts a line.
    rows = [line for line in lines if "dev1" in line]
    assert len(rows) == 1 and len([line for line in lines if "ev\\u202eil" in line]) == 1, r.stdout
    assert "m\\x1b[31m" in rows[0] and "1\\n2" in rows[0], r.stdout
    assert "\\x1b[2J\\x1b]0;owned\\x07kitchen\\nkitchen" in r.stdout.replace("\n", "")
    assert not any(line.lstrip(" |\u2502").startswith("kitchen   yes") for line in lines), r.stdout
    js = run_keywire("fleet", "status", "--mqtt", broker.url, "--fleet", FLEET, "--json")
    assert js.returncode == 0 and "\x1b" not in js.stdout
    assert {d["reason"] for d in json.loads(js.stdout)} == {EVIL, "fine"}  # JSON keeps the value, escaped

    # A device's reply to a command: its reason is shown escaped too.
    answer = subprocess.Popen([sys.executable, "-c", _REPLIER, broker.host, str(broker.port)])
    try:
        time.sleep(1.0)
        c = run_keywire("fleet", "command", "status", "--device", "dev1", "--mqtt", broker.url, "--fleet", FLEET,
                        "--timeout", "20")
    finally:
        answer.kill()
        answer.wait()
    assert c.returncode != 0 and "\x1b" not in c.stdout + c.stderr
    assert c.stdout.count("\n") == 1 and "FAILED: \\x1b[2J" in c.stdout, c.stdout + c.stderr


# A stand-in device (plain paho) that answers every command with a hostile reason.
_REPLIER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
EVIL = %r
def on_message(c, u, m):
    cmd = json.loads(m.payload)
    c.publish("keywire/%s/device/dev1/reply", json.dumps({"v": 1, "type": "reply", "device_id": "dev1",
              "action": cmd["action"], "id": cmd.get("id", ""), "ok": False, "reason": EVIL}), qos=1)
c = mqtt.Client(CallbackAPIVersion.VERSION2)
c.on_message = on_message
c.on_connect = lambda c, u, f, rc, p: c.subscribe("keywire/%s/device/dev1/cmd", 1)
c.connect(sys.argv[1], int(sys.argv[2]))
c.loop_forever()
""" % (EVIL, FLEET, FLEET)


def test_watch_shows_device_text_escaped(broker, observe):
    obs = observe(broker)
    watch = subprocess.Popen([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                              "watch", "--mqtt", broker.url, "--fleet", FLEET, "--count", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    event = {"v": 1, "type": "detection", "event_id": "0" * 31 + "1", "device_id": "dev1",
             "keyword": "yes\n2026-12-04 10:00:00 kitchen   alarm\x1b[8m", "class_index": 0, "score": 200,
             "time_ms": 1000, "wall_time": time.time(), "monotonic": 1.0, "model_name": "m\x9b2J",
             "model_version": "1", "model_sha256": "ab" * 32, "source": "mic"}
    try:
        deadline = time.monotonic() + 30
        while watch.poll() is None and time.monotonic() < deadline:
            obs.publish(f"keywire/{FLEET}/device/dev1/event", json.dumps(event).encode())
            time.sleep(0.5)
        out, err = watch.communicate(timeout=10)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert out.count("\n") == 1 and "\x1b" not in out and "\x9b" not in out
    assert "yes\\n2026-12-04 10:00:00 kitchen   alarm\\x1b[8m" in out and "m\\x9b2J" in out


def test_microphone_names_are_shown_escaped():
    """`keywire-agent devices`: a USB microphone names itself; its name is device text too."""
    from keywire.agent.audio_devices import InputDevice, device_table

    table = device_table([InputDevice(index=0, name="USB Mic\x1b[2J\nforged 1 2", channels=1, default_rate=16000,
                                      host_api="ALSA", is_default=True)])
    assert table.count("\n") == 1 and "\x1b" not in table and "USB Mic\\x1b[2J\\nforged 1 2" in table
