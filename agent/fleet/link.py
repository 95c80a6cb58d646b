"""Moved to `keywire.protocol.mqtt_link` (agent/protocol/mqtt_link.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.mqtt_link import *  # noqa: F401,F403
