"""Bounded structure-aware fuzzing of every parser of outside input (fixed seeds, seconds each).

MQTT payloads on each topic the agent subscribes to (commands, desired manifests, model
chunks) and those the host reads, serial frames, model files, WAV headers, recipe and agent
config TOML: the real entry point returns or raises a one-line `KeywireError`, never anything
else. benchmarks/fuzz.py runs the same harnesses for much longer.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from .harnesses import HARNESSES, check

# Examples per harness in the suite: a few seconds each on a small machine.
EXAMPLES = {"mqtt_command": 150, "mqtt_manifest": 120, "mqtt_chunk": 200, "mqtt_host": 150, "serial_frames": 200,
            "model_file": 200, "wav_header": 200, "recipe_toml": 150, "agent_config_toml": 150,
            "event_spool": 300}


def _fuzz_test(name: str):
    h = HARNESSES[name]

    @settings(derandomize=True, max_examples=EXAMPLES[name], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(h.strategy())
    def run(value) -> None:
        check(h, value)
    return run


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_parser_raises_only_keywire_errors(name):
    assert set(EXAMPLES) == set(HARNESSES)
    _fuzz_test(name)()
