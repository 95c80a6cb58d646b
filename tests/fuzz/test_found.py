"""Inputs the fuzzers found that once ended in a traceback; each must now be a one-line
`KeywireError` (the harnesses' property, checked on the exact input)."""
from __future__ import annotations

import pytest

from .harnesses import HARNESSES, check, model_bytes


def _overwrite(data: bytes, pos: int, word: bytes) -> bytes:
    return data[:pos] + word + data[pos + len(word):]


@pytest.mark.parametrize("name,make", [
    # A flatbuffer offset that wraps: flatbuffers raised TypeError reading the model's tables.
    ("model_file", lambda: _overwrite(model_bytes(), 27, b"\xff\xff\xff\x7f")),
    # ... and inside the SL_PARAMSv1 metadata.
    ("model_file", lambda: _overwrite(model_bytes(), 1363, b"\x00\x00\x00\x80")),
    # A model that loads but fails in the runtime at its first invocation (a constant tensor
    # without data): RuntimeError from invoke, in the audio loop; now refused at load.
    ("model_file", lambda: _overwrite(model_bytes(), 69509, b"\x01\x00\x00\x00")),
    # A recipe that is not UTF-8: UnicodeDecodeError from load_recipe.
    ("recipe_toml", lambda: b"\xff\xff\xff\x7f = 1\n"),
    # Deeply nested JSON on a desired topic: RecursionError in the receiver's rejection path.
    ("mqtt_manifest", lambda: ("group", b"[" * 5000 + b"]" * 5000, False)),
    # A damaged spool version byte set a readable log aside (the records were lost to the device).
    ("event_spool", lambda: ([(7, 1)], b"", 0)),
])
def test_found_input_is_handled(name, make):
    check(HARNESSES[name], make())


def test_model_that_cannot_run_is_refused_at_load():
    from keywire.agent.model import KeywordModel
    from keywire.protocol.errors import ModelError

    with pytest.raises(ModelError, match="cannot run this model"):
        KeywordModel.from_bytes(_overwrite(model_bytes(), 69509, b"\x01\x00\x00\x00"))
