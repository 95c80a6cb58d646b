"""Moved to `keywire.protocol.signing` (agent/protocol/signing.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.signing import *  # noqa: F401,F403
from keywire.protocol.signing import generate_keys, key_id, load_private_key, load_public_key, trusted_keys, sign, verify  # noqa: F401
