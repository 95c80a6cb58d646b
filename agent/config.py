"""Agent configuration: parsed once from the TOML file and command-line overrides into
frozen dataclasses that are passed to the engines (which never read argv or the env).

File layout (`/etc/keywire/agent.toml`)::

    model = "/var/lib/keywire/models/active.tflite"   # or a list: the first is the primary
    source = "mic"
    embeddings_per_call = 4   # speech-embedding models: one embedding-model call per 4 x 80 ms
                              # (detections up to 240 ms later, about 2/3 of the CPU); 1..16
    device_id = "kitchen-pi"
    state_dir = "/var/lib/keywire"
    [detection]   MLTK names (detection_threshold, detection_threshold_list,
                  average_window_duration_ms, suppression_ms, minimum_count, latency_ms,
                  volume_gain) or the CLI spellings (threshold, threshold_list, window_ms, ...);
                  limits in keywire.protocol.detection.LIMITS
    [led]         red = "ACT", green = "", blink_ms = 200
    [mqtt]        url, fleet, groups, trusted_keys, ca, cert, key, username, password,
                  protocol, ha_discovery, telemetry_s
    [board]       port = "serial:/dev/ttyACM0@921600", mode = "detect"
"""
from __future__ import annotations

import dataclasses
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Tuple

from keywire.agent.frontend.embedding import MAX_EMBEDDINGS_PER_CALL
from keywire.protocol.detection import DetectionOverrides
from keywire.protocol.errors import ConfigError, file_error
from keywire.protocol.topics import check_name
from keywire.protocol.typed import FieldError, decode_dataclass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class LedConfig:
    red: str = ""         # Linux LED class name under /sys/class/leds (detection)
    green: str = ""       # audio activity
    blink_ms: int = 200
    leds_dir: str = "/sys/class/leds"
    activity_dbfs: float = -50.0


@dataclass(frozen=True)
class MqttConfig:
    url: str = ""                       # mqtt://host:1883 or mqtts://host:8883
    fleet: str = "keywire"
    groups: Tuple[str, ...] = ()
    trusted_keys: Tuple[str, ...] = ()  # Ed25519 public key files allowed to sign models
    ca: str = ""
    cert: str = ""
    key: str = ""
    username: str = ""
    password: str = ""
    protocol: str = "3.1.1"             # or "5"
    ha_discovery: bool = False
    ha_max_event_age_s: float = 300.0   # older (spooled) detections reach the event log, not HA
    telemetry_s: float = 60.0
    keepalive_s: int = 30


@dataclass(frozen=True)
class BoardConfig:
    port: str = ""                      # serial:/dev/ttyACM0[@BAUD]
    mode: str = "detect"                # detect | stream


@dataclass(frozen=True)
class AgentConfig:
    model: str = ""                     # the primary model (a fleet push replaces it)
    extra_models: Tuple[str, ...] = ()  # more models on the same audio, each with its own parameters
    source: str = "mic"
    realtime: bool = True
    device_id: str = field(default_factory=socket.gethostname)
    state_dir: str = ""
    chunk_ms: int = 100
    embeddings_per_call: int = 4        # speech-embedding streams: 1 = lowest latency, 4 = about 2/3 the CPU
    log_level: str = "info"
    json_events: bool = True
    detection: DetectionOverrides = DetectionOverrides()
    led: LedConfig = LedConfig()
    mqtt: MqttConfig = MqttConfig()
    board: BoardConfig = BoardConfig()
    config_path: str = ""

    def validate(self) -> "AgentConfig":
        check_name("device id", self.device_id)
        if self.state_dir and Path(self.state_dir).exists() and not Path(self.state_dir).is_dir():
            raise ConfigError(f"state dir {self.state_dir} is not a directory")
        if not self.model and not self.state_dir and not (self.board.port and self.board.mode == "detect"):
            raise ConfigError("no model given (--model or 'model' in the config file)")
        for where, value, low, high in _ranges(self):
            if not low <= value <= high:
                raise ConfigError(f"{where} = {value!r} is out of range {low:g}..{high:g}")
        if self.board.mode not in ("detect", "stream"):
            raise ConfigError(f"board mode must be 'detect' or 'stream', got {self.board.mode!r}")
        if self.mqtt.protocol not in ("3.1.1", "5"):
            raise ConfigError(f"mqtt protocol must be '3.1.1' or '5', got {self.mqtt.protocol!r}")
        return self


def _ranges(c: AgentConfig) -> tuple[tuple[str, float, float, float], ...]:
    """Numeric settings outside the detection table, with their ranges."""
    return (("chunk_ms", c.chunk_ms, 1, 10_000),
            ("embeddings_per_call", c.embeddings_per_call, 1, MAX_EMBEDDINGS_PER_CALL),
            ("[led] blink_ms", c.led.blink_ms, 1, 60_000),
            ("[led] activity_dbfs", c.led.activity_dbfs, -150, 0),
            ("[mqtt] telemetry_s", c.mqtt.telemetry_s, 0.1, 86_400),
            ("[mqtt] keepalive_s", c.mqtt.keepalive_s, 1, 65_535),  # MQTT's 16-bit keep-alive
            ("[mqtt] ha_max_event_age_s", c.mqtt.ha_max_event_age_s, 0, 86_400 * 365))


_SECTIONS = {"detection": DetectionOverrides, "led": LedConfig, "mqtt": MqttConfig, "board": BoardConfig}


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """One section (or the top level) from its values: unknown keys, wrong types and, for
    [detection], values outside the detection table's limits are one-line `ConfigError`s."""
    if cls is DetectionOverrides:
        return DetectionOverrides.from_mapping(values, ConfigError, where, aliases=True)
    try:
        return decode_dataclass(cls, values, prefix=where, strict=True)
    except FieldError as exc:
        raise ConfigError(f"config: {exc}") from None


def load_config_file(path: Path) -> dict[str, Any]:
    """The TOML file as a dict; `ConfigError` naming the file and problem."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise file_error(exc, ConfigError, "config file", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def build_config(file_values: Mapping[str, Any], overrides: Mapping[str, Any],
                 config_path: str = "") -> AgentConfig:
    """Merge file values with command-line overrides (None = not given) into an AgentConfig.

    Override keys are top-level field names, or `section.field` for sections.
    """
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for key, value in file_values.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table in the config file")
            sections[key].update(value)
        else:
            top[key] = value
    if isinstance(top.get("model"), list):   # model = ["A.tflite", "B.tflite"]
        if not top["model"]:
            raise ConfigError("config: model is an empty list")
        top["model"], top["extra_models"] = top["model"][0], tuple(top["model"][1:])
    for key, value in overrides.items():
        if value is None or (isinstance(value, (list, tuple)) and not value and key != "extra_models"):
            continue
        section, dot, name = key.partition(".")
        if dot:
            sections[section][name] = value
        else:
            top[key] = value
    built = {name: _build(cls, sections[name], f"[{name}] ") for name, cls in _SECTIONS.items()}
    cfg = _build(AgentConfig, {**{k: v for k, v in top.items() if k not in _SECTIONS},
                               "config_path": config_path}, "")
    return dataclasses.replace(cfg, **built).validate()
