"""Moved to `keywire.protocol.sl_params` (agent/protocol/sl_params.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.sl_params import *  # noqa: F401,F403
from keywire.protocol.sl_params import find_metadata, read_params, write_params, merge_params, encode_params, decode_params  # noqa: F401
