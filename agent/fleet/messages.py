"""Moved to `keywire.protocol.messages` (agent/protocol/messages.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.messages import *  # noqa: F401,F403

