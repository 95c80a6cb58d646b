"""Board options: `serial:DEV[@BAUD]` parsing and one-line errors for bad values."""
from __future__ import annotations

import subprocess

import pytest

from keywire.agent.board.link import DEFAULT_BAUD, BoardSpec
from keywire.protocol.errors import ConfigError

from .conftest import agent_cmd, env


def test_board_spec_parsing():
    assert BoardSpec.parse("serial:/dev/ttyACM0") == BoardSpec("/dev/ttyACM0", DEFAULT_BAUD)
    assert BoardSpec.parse("serial:/dev/serial/by-id/usb-SEGGER_J-Link@460800") == BoardSpec(
        "/dev/serial/by-id/usb-SEGGER_J-Link", 460800)
    for bad, why in (("/dev/ttyACM0", "expected serial:"), ("serial:", "expected serial:"),
                     ("serial:/dev/x@fast", "not a number"), ("serial:/dev/x@0", "positive")):
        with pytest.raises(ConfigError, match=why):
            BoardSpec.parse(bad)


def test_agent_rejects_a_bad_board_option_in_one_line(word_models):
    r = subprocess.run([*agent_cmd(), "run", "--board", "usb:/dev/ttyACM0", "--model", str(word_models[0])],
                       capture_output=True, text=True, env=env(), timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "serial:/dev/ttyACM0" in r.stderr


def test_emulator_rejects_bad_options_in_one_line(tmp_path, word_wav):
    keywire = str(agent_cmd()[0]).replace("keywire-agent", "keywire")
    for args, why in ((["--mode", "sing"], "--mode"), (["--bit-flip-rate", "2"], "--bit-flip-rate"),
                      (["--model", str(tmp_path / "none.tflite")], "not found")):
        r = subprocess.run([keywire, "board-emulator", "--audio", str(word_wav), *args], capture_output=True,
                           text=True, env=env(), timeout=60)
        assert r.returncode != 0 and r.stdout == "" and r.stderr.count("\n") == 1 and why in r.stderr, r.stderr
