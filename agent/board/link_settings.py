"""Where a board is and how its serial link behaves: port spec, timing settings, state, counters."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from keywire.protocol.errors import ConfigError

from . import messages as m

DEFAULT_BAUD = 921600
MIN_STREAM_BAUD = 460800


@dataclass(frozen=True)
class BoardSpec:
    """Where the board is: `serial:/dev/ttyACM0[@BAUD]`."""

    port: str
    baud: int = DEFAULT_BAUD

    @classmethod
    def parse(cls, spec: str) -> "BoardSpec":
        kind, sep, rest = spec.partition(":")
        if kind != "serial" or not sep or not rest:
            raise ConfigError(f"board {spec!r}: expected serial:/dev/ttyACM0[@BAUD]")
        port, at, baud = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if at:
            try:
                b = int(baud)
            except ValueError:
                raise ConfigError(f"board {spec!r}: baud rate {baud!r} is not a number") from None
            if b <= 0:
                raise ConfigError(f"board {spec!r}: baud rate must be positive")
            return cls(port, b)
        return cls(port)


@dataclass(frozen=True)
class LinkSettings:
    """Timing and behaviour of the link (PROTOCOL.md "Behaviour, timeouts and retries")."""

    mode: m.Mode = m.Mode.DETECT
    scores_every: int = 0
    params: Optional[m.SetParams] = None
    ping_s: float = 0.25
    dead_s: float = 2.0
    request_timeout_s: float = 0.3
    request_retries: int = 8
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 1.0
    audio_buffer_s: float = 2.0
    led_refresh_s: float = 1.0
    max_gap_fill_frames: int = 50


class LinkState(str, enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"     # port open, waiting for HELLO
    CONNECTED = "connected"


@dataclass
class LinkStats:
    """Counters for telemetry and tests."""

    frames_rx: int = 0
    bad_crc: int = 0
    oversize: int = 0
    bad_version: int = 0
    protocol_errors: int = 0      # valid CRC, payload or type not understood
    board_errors: int = 0         # ERROR frames from the board
    detections: int = 0
    duplicates: int = 0
    audio_frames: int = 0
    dropped_frames: int = 0
    overflow_samples: int = 0     # audio the consumer did not take in time
    reconnects: int = 0
    board_resets: int = 0
    tx_frames: int = 0
    requests_failed: int = 0
    last_error: str = ""
