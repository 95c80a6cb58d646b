"""`keywire summarize`: MACs, weights and peak activation memory, the figures that decide
whether a model fits a microcontroller."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keywire.agent.model import KeywordModel
from keywire.host.summary import summarize

from tests.fixtures.paths import shared_path


def test_peak_activations_bound_by_tensors(tiny_model: Path) -> None:
    s = summarize(tiny_model)
    m = KeywordModel.load(tiny_model)
    inp = int(np.prod(m.input.shape))  # int8 input: one byte per value
    # the first op reads the whole input and writes its output while the input is alive
    first_out = int(np.prod(s.layers[0].outputs[0]))
    assert s.peak_activation_bytes >= inp + first_out
    assert s.peak_activation_bytes < s.size_bytes + inp
    assert f"Activations: {s.peak_activation_bytes:,} bytes" in s.to_text()
    assert json.loads(json.dumps(s.to_dict()))["peak_activation_bytes"] == s.peak_activation_bytes


def test_peak_activations_within_mltk_measured_arena() -> None:
    path = shared_path("mltk_models", "tflite_micro_speech.tflite")
    s = summarize(path)
    # MLTK records the TFLM arena it measured; live activations are most of it
    arena = int(s.parameters["runtime_memory_size"])
    assert 0.6 * arena < s.peak_activation_bytes <= arena
    assert s.total_macs == 336_000


def test_summarize_cli_prints_activations(keywire_cli, tiny_model: Path) -> None:
    r = keywire_cli("summarize", str(tiny_model))
    assert r.returncode == 0, r.stderr
    assert "Total MACs:" in r.stdout and "Activations:" in r.stdout


def test_summary_names_the_step_model_of_a_head_and_leaves_it_out_of_the_weights(keywire_cli) -> None:
    """The bundled speech12 carries its step form: summarize reports its size and its MACs
    per new embedding (a fraction of the whole window's), and counts neither it nor the
    parameters as weights; a model without one says nothing of it."""
    from keywire.training.bundled import model_path

    s = summarize(model_path("speech12"))
    assert s.step_model is not None
    assert 0 < s.step_model["macs"] < s.total_macs / 10
    assert s.total_weight_bytes + s.step_model["bytes"] < s.size_bytes
    assert abs(s.step_model["weight_bytes"] - s.total_weight_bytes) < 0.1 * s.total_weight_bytes  # same weights
    r = keywire_cli("summarize", str(model_path("speech12")))
    assert r.returncode == 0 and "Step model (KW_STEPv1)" in r.stdout, r.stdout[-2000:]
    assert summarize(model_path("on_off")).step_model is None
    assert json.loads(json.dumps(s.to_dict()))["step_model"]["macs"] == s.step_model["macs"]
