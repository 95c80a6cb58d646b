"""Home Assistant MQTT discovery: each device appears with an event entity, no HA configuration.

The agent publishes a retained config to `<prefix>/event/<device id>/keyword/config`; Home
Assistant creates an `event` entity whose event types are the model's classes, fed by the
device's detection topic and made unavailable by the device's last will. A second retained
config adds a sensor with the active model version.
"""
from __future__ import annotations

from typing import Sequence

from .messages import dumps
from .topics import DeviceTopics


def node_id(device: DeviceTopics) -> str:
    """The device id itself (so the broker ACL `homeassistant/+/%u/+/config` confines it);
    HA allows only [A-Za-z0-9_-] here."""
    return device.device_id.replace(".", "_")


def discovery_messages(device: DeviceTopics, classes: Sequence[str], software_version: str,
                       prefix: str = "homeassistant") -> list[tuple[str, bytes]]:
    """(topic, retained payload) pairs announcing this device to Home Assistant."""
    node = node_id(device)
    uid = f"keywire_{device.fleet}_{node}"
    dev = {"identifiers": [uid], "name": f"keywire {device.device_id}", "manufacturer": "keywire",
           "model": "keyword spotting agent", "sw_version": software_version}
    availability = {"topic": device.status, "value_template": "{{ 'online' if value_json.online else 'offline' }}",
                    "payload_available": "online", "payload_not_available": "offline"}
    event = {
        "name": "Keyword", "unique_id": f"{uid}_keyword", "object_id": f"{uid}_keyword",
        "state_topic": device.event,
        "event_types": list(classes),
        "value_template": ('{{ {"event_type": value_json.keyword, "score": value_json.score, '
                           '"event_id": value_json.event_id} | tojson }}'),
        "availability": [availability], "device": dev,
    }
    model = {
        "name": "Model", "unique_id": f"{uid}_model", "object_id": f"{uid}_model",
        "state_topic": device.status, "value_template": "{{ value_json.model.name ~ ' ' ~ value_json.model.version }}",
        "entity_category": "diagnostic", "availability": [availability], "device": dev,
    }
    return [(f"{prefix}/event/{node}/keyword/config", dumps(event)),
            (f"{prefix}/sensor/{node}/model/config", dumps(model))]
