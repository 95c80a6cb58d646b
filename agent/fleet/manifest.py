"""Moved to `keywire.protocol.manifest` (agent/protocol/manifest.py): edit it there.

Temporary re-export for code not yet importing the new path; removed once every import is updated.
"""
from keywire.protocol.manifest import *  # noqa: F401,F403
from keywire.protocol.manifest import build_manifest, input_shape_of, sha256_hex, split, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE  # noqa: F401
