"""LED responder on a Linux-LED-class-shaped directory: red blinks, green follows audio level."""
from __future__ import annotations

import time

from keywire.agent.config import LedConfig
from keywire.agent.events import Detection
from keywire.agent.led import LedResponder


def make_led(root, name, max_brightness="255"):
    d = root / name
    d.mkdir()
    (d / "brightness").write_text("0")
    (d / "max_brightness").write_text(max_brightness)
    return d / "brightness"


def test_red_blinks_on_detection_and_green_follows_activity(tmp_path):
    red, green = make_led(tmp_path, "red"), make_led(tmp_path, "green", "1")
    leds = LedResponder(LedConfig(red="red", green="green", blink_ms=100, leds_dir=str(tmp_path),
                                  activity_dbfs=-40.0))
    leds.emit(Detection(keyword="on", score=240, time_ms=0))
    assert red.read_text() == "255"
    time.sleep(0.3)
    assert red.read_text() == "0"
    leds.activity(-20.0)
    assert green.read_text() == "1"
    leds.activity(-70.0)
    assert green.read_text() == "0"
    leds.close()


def test_missing_led_is_ignored(tmp_path, caplog):
    leds = LedResponder(LedConfig(red="absent", leds_dir=str(tmp_path)))
    leds.emit(Detection(keyword="on", score=240, time_ms=0))
    leds.emit(Detection(keyword="on", score=240, time_ms=10))
    assert sum("LED absent unusable" in r.message for r in caplog.records) == 1
    leds.close()
