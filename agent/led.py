"""LEDs through the Linux LED class (/sys/class/leds/NAME/brightness), e.g. the Pi's ACT LED.

Roles as on the BRD2601: red blinks on a detection, green shows audio activity. Writes are
tiny sysfs writes; a missing or unwritable LED is logged once and then ignored.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .config import LedConfig
from .events import Detection

if TYPE_CHECKING:
    from .component import AgentContext, Tick

log = logging.getLogger("keywire.led")


class Led:
    """One LED class device; `set(on)` writes brightness only when it changes."""

    def __init__(self, name: str, leds_dir: str = "/sys/class/leds") -> None:
        self.name = name
        self.path = Path(leds_dir) / name / "brightness"
        self._state: Optional[bool] = None
        self._broken = False
        self._max = "1"
        try:
            self._max = (self.path.parent / "max_brightness").read_text().strip() or "1"
        except OSError:
            pass

    def set(self, on: bool) -> None:
        if self._broken or on == self._state:
            return
        try:
            self.path.write_text(self._max if on else "0")
            self._state = on
        except OSError as exc:
            self._broken = True
            log.warning("LED %s unusable (%s); continuing without it", self.name, exc.strerror or exc)

    @property
    def state(self) -> Optional[bool]:
        return self._state


class LedResponder:
    """Red blink per detection (an event sink) and green audio-activity indication."""

    def __init__(self, config: LedConfig) -> None:
        self.config = config
        self.red = Led(config.red, config.leds_dir) if config.red else None
        self.green = Led(config.green, config.leds_dir) if config.green else None
        self._timer: Optional[threading.Timer] = None

    def emit(self, detection: Detection) -> None:
        if self.red is None:
            return
        self.red.set(True)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.config.blink_ms / 1000.0, self.red.set, args=(False,))
        self._timer.daemon = True
        self._timer.start()

    # AgentComponent: its own sink (red), follows the audio level from the processing loop (green).
    @property
    def sink(self) -> "LedResponder":
        return self

    def start(self, agent: "AgentContext") -> None:
        pass

    def tick(self, tick: "Tick") -> None:
        if tick.samples:
            self.activity(tick.level_dbfs)

    def activity(self, level_dbfs: float) -> None:
        if self.green is not None:
            self.green.set(level_dbfs >= self.config.activity_dbfs)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for led in (self.red, self.green):
            if led is not None:
                led.set(False)
