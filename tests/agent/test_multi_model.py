"""`keywire-agent run --model A --model B`: several models on one audio stream (the real agent
process on a WAV), each detection tagged with its model, each model with its own parameters."""
from __future__ import annotations

import json

import pytest

from keywire.protocol.sl_params import merge_params
from tests.fixtures.speech import stream_of_words, write_wav

from .test_agent_run import detections, run_agent

VOICES = ["en-us", "en+f3", "en-gb", "en+m3"]


@pytest.fixture(scope="module")
def yes_no_wav(tmp_path_factory):
    x, _ = stream_of_words(["yes", "no", "on", "yes", "no", "off", "yes", "no"], VOICES, gap_s=1.5, seed=2)
    return write_wav(tmp_path_factory.mktemp("multi") / "yes_no.wav", x)


@pytest.fixture(scope="module")
def mf_eager(tmp_path_factory):
    """The bundled microfrontend speech12_mf under another name, with detection parameters of
    its own (a trained model, not the test's tiny one: that one is too weak on these voices
    to fire reliably, and its quality moves between training runs)."""
    from keywire.training.bundled import model_path

    out = tmp_path_factory.mktemp("eager") / "mf_eager.tflite"
    params = {"name": "mf_eager", "detection_threshold": 150, "average_window_duration_ms": 300,
              "minimum_count": 1}
    out.write_bytes(merge_params(model_path("speech12_mf").read_bytes(), params))
    return out


def _by_model(found: list[dict]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for d in found:
        out.setdefault(d["model_name"], []).append((d["keyword"], d["time_ms"], d["score"]))
    return out


def test_three_models_at_once_equal_each_alone(yes_no_wav, mf_eager, embedding_head, embedding_head_int8):
    models = [mf_eager, embedding_head, embedding_head_int8]
    alone = {}
    for m in models:
        r = run_agent("run", "--model", str(m), "--source", f"file:{yes_no_wav}", "--no-realtime")
        assert r.returncode == 0, r.stderr
        alone.update(_by_model(detections(r.stdout)))
    assert set(alone) == {"mf_eager", "tiny_embedding", "tiny_embedding_int8"}, alone
    args = [a for m in models for a in ("--model", str(m))]
    r = run_agent("run", *args, "--source", f"file:{yes_no_wav}", "--no-realtime")
    assert r.returncode == 0, r.stderr
    assert _by_model(detections(r.stdout)) == alone


def test_models_listed_in_the_config_file(yes_no_wav, mf_eager, embedding_head, tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"model = {json.dumps([str(embedding_head), str(mf_eager)])}\n"
                   f'source = "file:{yes_no_wav}"\nrealtime = false\n')
    r = run_agent("run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    names = {d["model_name"] for d in detections(r.stdout)}
    assert names == {"mf_eager", "tiny_embedding"}
    # --model on the command line replaces the whole list
    r = run_agent("run", "--config", str(cfg), "--model", str(mf_eager))
    assert r.returncode == 0, r.stderr
    assert {d["model_name"] for d in detections(r.stdout)} == {"mf_eager"}


def test_a_bad_second_model_is_one_line(yes_no_wav, tiny_model, tmp_path):
    r = run_agent("run", "--model", str(tiny_model), "--model", str(tmp_path / "missing.tflite"),
                  "--source", f"file:{yes_no_wav}", "--no-realtime")
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if "missing.tflite" in ln]
    assert len(lines) == 1 and "not found" in lines[0], r.stderr


def test_embeddings_per_call_changes_no_detection_even_at_the_end_of_a_file(yes_no_wav, embedding_head, tmp_path):
    """The agent holds embeddings back with --embeddings-per-call K and computes them when a
    file ends: a file cut 0.3 s after a detection gives that detection with K = 16 too."""
    from tests.fixtures.speech import read_wav

    def found(wav, k):
        r = run_agent("run", "--model", str(embedding_head), "--source", f"file:{wav}", "--no-realtime",
                      "--embeddings-per-call", str(k))
        assert r.returncode == 0, r.stderr
        return [(d["keyword"], d["time_ms"], d["score"]) for d in detections(r.stdout)]

    ref = found(yes_no_wav, 1)
    assert len(ref) >= 3, ref
    x, rate = read_wav(yes_no_wav)
    cut = write_wav(tmp_path / "cut.wav", x[:rate * (ref[-1][1] + 300) // 1000])
    assert found(cut, 1) == ref and found(cut, 16) == ref and found(yes_no_wav, 4) == ref
