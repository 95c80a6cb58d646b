"""`keywire fleet prune`: clear retained model chunks that no device can ask for any more.

Chunks are retained so that a device offline during a push fetches them when it returns. A
device only fetches the chunks of a manifest it finds on one of its desired topics (its own,
its groups', the whole fleet's), so a model named by no retained desired manifest is
unreachable and its chunks are dead weight in the broker's memory and persistence file.
Clearing one is an empty retained message on its topic. Do not run this while a push is
publishing: its chunks go out before its manifest does.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from keywire.protocol.errors import MessageError
from keywire.protocol.mqtt_link import MqttSettings
from keywire.protocol.manifest import Manifest
from keywire.protocol.topics import FleetTopics

from .fleet_client import FleetClient

_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PruneResult:
    """What the broker held and what was (or, in a dry run, would be) cleared."""

    kept: dict[str, int] = field(default_factory=dict)      # model sha256 -> retained chunks
    cleared: dict[str, int] = field(default_factory=dict)   # model sha256 -> chunks cleared
    desired: dict[str, str] = field(default_factory=dict)   # desired topic -> model sha256
    unreadable: list[str] = field(default_factory=list)     # desired topics that hold no manifest
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"kept": self.kept, "cleared": self.cleared, "desired": self.desired,
                "unreadable": self.unreadable, "dry_run": self.dry_run}


class _RetainedScan:
    """Collects retained chunk topics and desired manifests as they arrive."""

    def __init__(self, topics: FleetTopics) -> None:
        self.topics = topics
        self.lock = threading.Lock()
        self.chunks: dict[str, set[str]] = {}
        self.desired: dict[str, str] = {}
        self.unreadable: list[str] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared topic
        sha = self.topics.model_of_chunk(topic)
        with self.lock:
            if _SHA.match(sha):
                self.chunks.setdefault(sha, set()).add(topic)
            elif topic.endswith("/desired"):
                try:
                    self.desired[topic] = Manifest.from_json(payload).sha256
                except MessageError:
                    self.unreadable.append(topic)


def prune_chunks(settings: MqttSettings, fleet: str, dry_run: bool = False,
                 settle_s: float = 1.0) -> PruneResult:
    """Clear the retained chunks of every model no retained desired manifest names.

    A desired topic holding something that is not a manifest keeps every chunk (nothing is
    cleared): the scan cannot tell which model it was meant to name."""
    topics = FleetTopics(fleet)
    scan = _RetainedScan(topics)
    client = FleetClient(settings, fleet, extra_topics=(topics.all_chunks(), *topics.all_desired()), on_other=scan)
    client.connect()
    try:
        client.settle(quiet_s=settle_s, max_s=max(30.0, settle_s))
        with scan.lock:
            chunks = {sha: sorted(t) for sha, t in scan.chunks.items()}
            desired, unreadable = dict(scan.desired), list(scan.unreadable)
        needed = set(desired.values())
        result = PruneResult(desired=desired, unreadable=unreadable, dry_run=dry_run)
        for sha, topics in sorted(chunks.items()):
            if sha in needed or unreadable:
                result.kept[sha] = len(topics)
                continue
            result.cleared[sha] = len(topics)
            if not dry_run:
                for t in topics:
                    client.publish(t, b"", retain=True)
        client.flush()
    finally:
        client.close()
    return result
