"""Moved to `keywire.protocol.frontend_settings` (agent/protocol/frontend_settings.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.frontend_settings import *  # noqa: F401,F403
from keywire.protocol.detection import DetectionSettings  # noqa: F401
