"""The streaming spotter: chunk-size invariance, model swap between inference steps."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.agent.spotter import KeywordSpotter
from tests.fixtures.paths import shared_path
from tests.fixtures.speech import stream_of_words


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    x, _ = stream_of_words(["on", "off", "yes", "no"], ["en-us", "en+f3"], gap_s=1.0, seed=3)
    return x


def run_chunks(model: KeywordModel, x: np.ndarray, sizes) -> tuple[list, list]:
    scores: list = []
    sp = KeywordSpotter(model, on_scores=lambda t, s: scores.append((t, s.tobytes())))
    found, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        found += [(d.keyword, d.time_ms, d.score) for d in sp.feed(x[pos:pos + n])]
        pos, i = pos + n, i + 1
    return found, scores


@pytest.mark.parametrize("name", ["keyword_spotting_on_off_v3", "tflite_micro_speech"])
def test_chunk_size_invariance_mltk(speech, name):
    model = KeywordModel.load(shared_path("mltk_models", f"{name}.tflite"))
    rng = np.random.default_rng(0)
    ref = run_chunks(model, speech, [len(speech)])
    assert ref[0], "the reference run should detect something"
    for sizes in ([160], [1000], [4093], list(rng.integers(1, 3000, size=50))):
        assert run_chunks(model, speech, sizes) == ref


def test_chunk_size_invariance_tiny(speech, tiny_model):
    model = KeywordModel.load(tiny_model)
    ref = run_chunks(model, speech, [len(speech)])
    assert ref[1]
    assert run_chunks(model, speech, [37, 512, 8000]) == ref


def test_swap_model_between_inferences(speech):
    a = KeywordModel.load(shared_path("mltk_models", "keyword_spotting_on_off_v3.tflite"))
    b = KeywordModel.load(shared_path("mltk_models", "tflite_micro_speech.tflite"))
    sp = KeywordSpotter(a)
    half = len(speech) // 2
    first = sp.feed(speech[:half])
    sp.swap_model(b)
    second = sp.feed(speech[half:])
    assert all(d.model_name == a.name for d in first)
    assert all(d.model_name == b.name for d in second)
    assert sp.model is b and sp.time_ms == len(speech) * 1000 // 16000


def test_swap_between_families_keeps_chunk_invariance(speech, tiny_model, embedding_head):
    """A microfrontend model swapped for a speech-embedding head at the same audio position
    gives the same detections whatever the chunking; the old stream is dropped."""
    a, b = KeywordModel.load(tiny_model), KeywordModel.load(embedding_head)
    half = len(speech) // 2

    def run(sizes):
        sp = KeywordSpotter(a)
        found, pos, i = [], 0, 0
        for end in (half, len(speech)):
            while pos < end:
                n = min(sizes[i % len(sizes)], end - pos)
                found += [(d.model_name, d.keyword, d.time_ms) for d in sp.feed(speech[pos:pos + n])]
                pos, i = pos + n, i + 1
            if end == half:
                sp.swap_model(b)
        assert sp.model is b and len(sp._streams) == 1
        return found, sp.stats.inferences

    ref = run([len(speech)])
    assert ref[1] > 0
    assert run([160]) == ref and run([999, 4000]) == ref
