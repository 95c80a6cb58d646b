"""Moved to `keywire.protocol.errors` (agent/protocol/errors.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.errors import *  # noqa: F401,F403

