"""Moved to `keywire.protocol.topics` (agent/protocol/topics.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.topics import *  # noqa: F401,F403
from keywire.protocol.topics import check_name, ROOT  # noqa: F401
