"""Home Assistant MQTT discovery: each device appears with an event entity, no HA configuration.

With `--ha-discovery` (or `ha_discovery = true` under `[mqtt]`) the agent publishes retained
configs under `<prefix>/<component>/<fleet>/<device id>/config` (component `event` and `sensor`):

- an `event` entity whose event types are the model's keywords (`_unknown_` and `_silence_`
  never fire), fed by the device's `ha_event` topic;
- a diagnostic sensor with the active model's name and version.

Both carry `default_entity_id` (Home Assistant 2025.10 deprecated `object_id`), an `origin`
block and availability from the device's status topic (its last will). The node id is the
fleet, so equally named devices of two fleets do not overwrite each other; the object id is
the device id, so the broker ACL `homeassistant/+/+/%u/config` confines each device to its
own configs.

Every detection goes to the `event` topic (the complete log, spooled, nothing lost). Only
detections younger than `max_event_age_s` are also published on `ha_event`: a detection
spooled overnight while the broker was away must not fire an automation in the morning.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

from keywire.protocol.errors import KeywireError
from keywire.protocol.messages import Detection, dumps
from keywire.protocol.topics import DeviceTopics

DEFAULT_MAX_EVENT_AGE_S = 300.0


def node_id(device: DeviceTopics) -> str:
    """The fleet (HA allows only [A-Za-z0-9_-] in a discovery topic's ids)."""
    return device.fleet.replace(".", "_")


def object_id(device: DeviceTopics) -> str:
    """The device id itself, so the broker ACL `homeassistant/+/+/%u/config` confines it."""
    return device.device_id.replace(".", "_")


def ha_event_topic(device: DeviceTopics) -> str:
    """Fresh detections only: what Home Assistant's event entity listens to."""
    return f"{device.base}/ha_event"


def keywords(classes: Sequence[str]) -> list[str]:
    """The classes that are reported as detections (not `_unknown_`, `_silence_`)."""
    return [c for c in classes if not (c.startswith("_") and c.endswith("_"))]


def discovery_messages(device: DeviceTopics, classes: Sequence[str], software_version: str,
                       prefix: str = "homeassistant") -> list[tuple[str, bytes]]:
    """(topic, retained payload) pairs announcing this device to Home Assistant."""
    fleet, node = node_id(device), object_id(device)
    uid = f"keywire_{fleet}_{node}"
    dev = {"identifiers": [uid], "name": f"keywire {device.device_id} ({device.fleet})", "manufacturer": "keywire",
           "model": "keyword spotting agent", "sw_version": software_version}
    origin = {"name": "keywire", "sw_version": software_version}
    availability = {"topic": device.status, "value_template": "{{ 'online' if value_json.online else 'offline' }}",
                    "payload_available": "online", "payload_not_available": "offline"}
    event = {
        "name": "Keyword", "unique_id": f"{uid}_keyword", "default_entity_id": f"event.{uid}_keyword",
        "state_topic": ha_event_topic(device),
        "event_types": keywords(classes),
        "value_template": ('{{ {"event_type": value_json.keyword, "score": value_json.score, '
                           '"event_id": value_json.event_id, "model": value_json.model_name} | tojson }}'),
        "availability": [availability], "device": dev, "origin": origin,
    }
    model = {
        "name": "Model", "unique_id": f"{uid}_model", "default_entity_id": f"sensor.{uid}_model",
        "state_topic": device.status, "value_template": "{{ value_json.model.name ~ ' ' ~ value_json.model.version }}",
        "entity_category": "diagnostic", "availability": [availability], "device": dev, "origin": origin,
    }
    return [(f"{prefix}/event/{fleet}/{node}/config", dumps(event)),
            (f"{prefix}/sensor/{fleet}/{node}/config", dumps(model))]


def fresh_detection(payload: bytes, max_age_s: float, now: Optional[float] = None) -> Optional[bytes]:
    """The detection payload if it is young enough to reach Home Assistant, else None.

    Age is the device's wall clock now minus the detection's `wall_time`; a payload that is
    not a valid detection (its own wire form decides) is not forwarded."""
    try:
        d = Detection.from_json(payload)
    except KeywireError:
        return None
    age = (time.time() if now is None else now) - d.wall_time
    return payload if -max_age_s <= age <= max_age_s else None
