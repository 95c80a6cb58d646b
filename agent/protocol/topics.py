"""The MQTT topic layout of one fleet, in one place (docs/FLEET.md documents it).

Everything a device publishes lives under `keywire/<fleet>/device/<id>/` so one ACL pattern
confines it; everything only the host may write (models, desired model, commands) lives on
topics a device can read but not write.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

ROOT = "keywire"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(kind: str, value: str) -> str:
    """Fleet, device and group names are single topic levels without wildcards."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):  # fullmatch: no trailing newline
        raise ConfigError(f"invalid {kind} {str(value)[:70]!r}: use 1-64 letters, digits, '_', '-', '.'")
    return value


@dataclass(frozen=True)
class FleetTopics:
    """Topics shared by the whole fleet."""

    fleet: str

    def __post_init__(self) -> None:
        check_name("fleet name", self.fleet)

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.fleet}"

    def device(self, device_id: str) -> "DeviceTopics":
        return DeviceTopics(self.fleet, device_id)

    # host -> devices
    def chunk(self, sha256: str, index: int) -> str:
        return f"{self.base}/model/{sha256}/chunk/{index}"

    def chunk_filter(self, sha256: str) -> str:
        return f"{self.base}/model/{sha256}/chunk/+"

    def all_chunks(self) -> str:
        return f"{self.base}/model/+/chunk/+"

    def model_of_chunk(self, topic: str) -> str:
        """Model sha256 from a chunk topic of this fleet ('' if not such a topic)."""
        parts = topic[len(self.base) + 1:].split("/") if topic.startswith(self.base + "/") else []
        return parts[1] if len(parts) == 4 and parts[0] == "model" and parts[2] == "chunk" else ""

    def desired_all(self) -> str:
        return f"{self.base}/all/desired"

    def desired_group(self, group: str) -> str:
        return f"{self.base}/group/{check_name('group', group)}/desired"

    def all_desired(self) -> tuple[str, ...]:
        """Filters for every desired topic: the fleet's, each group's, each device's."""
        return self.desired_all(), f"{self.base}/group/+/desired", f"{self.base}/device/+/desired"

    # devices -> host (wildcards for the host's subscriptions)
    def all_status(self) -> str:
        return f"{self.base}/device/+/status"

    def all_events(self) -> str:
        return f"{self.base}/device/+/event"

    def all_telemetry(self) -> str:
        return f"{self.base}/device/+/telemetry"

    def all_progress(self) -> str:
        return f"{self.base}/device/+/push"

    def all_replies(self) -> str:
        return f"{self.base}/device/+/reply"

    @staticmethod
    def device_of(topic: str) -> str:
        """Device id from a `keywire/<fleet>/device/<id>/...` topic ('' if not such a topic)."""
        parts = topic.split("/")
        return parts[3] if len(parts) >= 5 and parts[2] == "device" else ""


@dataclass(frozen=True)
class DeviceTopics:
    """Topics of one device."""

    fleet: str
    device_id: str

    def __post_init__(self) -> None:
        check_name("fleet name", self.fleet)
        check_name("device id", self.device_id)

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.fleet}/device/{self.device_id}"

    # device publishes (ACL: only its own id)
    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def progress(self) -> str:
        return f"{self.base}/push"

    @property
    def reply(self) -> str:
        return f"{self.base}/reply"

    # device subscribes (ACL: read only)
    @property
    def command(self) -> str:
        return f"{self.base}/cmd"

    @property
    def desired(self) -> str:
        return f"{self.base}/desired"
