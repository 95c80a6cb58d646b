"""The speech-embedding family: pinned feature models, streaming embeddings that do not
depend on chunking, heads with input [1, N, 96] checked against the installed embedding, and
the spotter running them through the same detector as every other model."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from keywire.agent.frontend import embedding as E
from keywire.agent.model import KeywordModel
from keywire.agent.spotter import KeywordSpotter
from keywire.protocol.errors import ModelError
from keywire.protocol.sl_params import read_params, write_params
from tests.fixtures.speech import stream_of_words


@pytest.fixture(scope="module")
def words() -> np.ndarray:
    x, _ = stream_of_words(["yes", "no", "up", "yes", "no"], ["en-us", "en-gb-x-rp+f2", "en-us-nyc"],
                           gap_s=1.0, seed=3)
    return x


def test_feature_models_are_the_pinned_files():
    fm = E.feature_models()
    assert fm.mel_path.name == "melspectrogram.tflite" and fm.embedding_path.name == "embedding_model.tflite"
    assert fm.embedding_sha256 == E.EMBEDDING_SHA256
    assert "openwakeword" in str(fm.mel_path)


def test_missing_or_altered_feature_model_is_one_line():
    with pytest.raises(ModelError) as exc:
        E._checked("no_such_model.tflite", E.MEL_SHA256)
    assert "no_such_model.tflite" in str(exc.value) and "openwakeword==0.5.1" in str(exc.value)
    with pytest.raises(ModelError) as exc:
        E._checked(E.MEL_FILE, "0" * 64)        # the installed file is not what this pin names
    msg = str(exc.value)
    assert "melspectrogram.tflite" in msg and "sha256" in msg and "\n" not in msg


def test_embeddings_do_not_depend_on_chunking(words):
    whole = E.compute_embeddings(words)
    assert whole.dtype == np.float32 and whole.shape == (len(words) // 1280 - 9, E.EMBEDDING_DIM)
    assert np.abs(whole).max() > 0
    fe = E.EmbeddingFrontend()
    rng = np.random.default_rng(1)
    for sizes in ([1], [160], [1280], [1279, 1281], list(rng.integers(0, 5000, 40))):
        fe.reset()
        out, pos, i = [], 0, 0
        while pos < len(words):
            n = int(sizes[i % len(sizes)])
            out.append(fe.process(words[pos:pos + n]))
            pos, i = pos + n, i + 1
        np.testing.assert_array_equal(np.concatenate(out), whole)
    fe.close()


def test_first_embedding_after_76_mel_frames_then_one_per_step(words):
    fe = E.EmbeddingFrontend()
    assert len(fe.process(words[:E.FIRST_EMBEDDING_SAMPLES - 1])) == 0
    assert len(fe.process(words[E.FIRST_EMBEDDING_SAMPLES - 1:E.FIRST_EMBEDDING_SAMPLES])) == 1
    assert len(fe.process(words[E.FIRST_EMBEDDING_SAMPLES:E.FIRST_EMBEDDING_SAMPLES + 3 * 1280])) == 3


@pytest.mark.parametrize("k", [2, 4, 16])
def test_several_embeddings_per_call_give_the_same_embeddings(words, k):
    """One embedding-model call over 76 + 8(k-1) mel frames equals k single-window calls;
    the stream holds embeddings back until the k-th of a group is due."""
    whole = E.compute_embeddings(words)
    fe = E.EmbeddingFrontend(embeddings_per_call=k)
    rng = np.random.default_rng(k)
    out, pos = [], 0
    while pos < len(words):
        n = int(rng.integers(1, 4000))
        out.append(fe.process(words[pos:pos + n]))
        pos += n
    got = np.concatenate(out)
    assert len(whole) - k < len(got) <= len(whole) and len(got) % k == 0
    np.testing.assert_array_equal(got, whole[:len(got)])
    fe.reset()
    np.testing.assert_array_equal(fe.process(words[:E.FIRST_EMBEDDING_SAMPLES + (k - 1) * 1280]), whole[:k])


@pytest.mark.parametrize("k", [1, 3])
def test_segments_give_the_whole_model_s_embeddings_through_flush_and_reset(words, k):
    """The stream runs the embedding model as segments that keep their context; a flush
    before the segments are primed, one after, and a reset in the middle all give what the
    whole model gives on whole windows."""
    whole = E.compute_embeddings(words)
    fe = E.EmbeddingFrontend(embeddings_per_call=k)
    assert fe.segmented and not E.EmbeddingFrontend(k, segmented=False).segmented
    first = E.FIRST_EMBEDDING_SAMPLES
    got = [fe.process(words[:first])]
    assert len(got[0]) == (1 if k == 1 else 0)
    got += [fe.process(np.zeros(0, np.int16)), fe.flush()]          # not primed for k > 1
    got.append(fe.process(words[first:first + 7 * 1280 + 5]))
    got.append(fe.flush())                                           # primed: only new frames
    got.append(fe.process(words[first + 7 * 1280 + 5:]))
    got.append(fe.flush())
    np.testing.assert_array_equal(np.concatenate(got), whole)
    fe.reset()
    np.testing.assert_array_equal(np.concatenate([fe.process(words), fe.flush()]), whole)
    fe.close()
    plain = E.EmbeddingFrontend(embeddings_per_call=k, segmented=False)     # tflite-runtime's way
    np.testing.assert_array_equal(np.concatenate([plain.process(words[:30000]), plain.process(words[30000:]),
                                                  plain.flush()]), whole)


def test_mel_cut_gives_the_whole_mel_model_s_frames_for_any_grouping(words):
    """The mel model runs without its per-call clamp on several blocks at once, the clamp
    applied per block: the same frames as one call of the whole model per block, also where
    the clamp binds (a quiet stretch next to loud speech)."""
    from keywire.agent.interpreter import load_interpreter
    x = words[:40 * 1280 + 480].copy()
    x[20 * 1280:24 * 1280] //= 3000                    # near-silence: values at the floor
    whole = load_interpreter(E.feature_models().mel_path.read_bytes(), input_shape=[1, 1760])
    ref = []
    for j in range(40):
        whole.set_tensor(whole.get_input_details()[0]["index"], x[None, j * 1280:j * 1280 + 1760].astype(np.float32))
        whole.invoke()
        ref.append(whole.get_tensor(whole.get_output_details()[0]["index"]).reshape(-1, 32) / 10.0 + 2.0)
    ref = np.concatenate(ref)
    per_block_min = ref.reshape(40, -1).min(axis=1)
    assert (ref.reshape(40, -1) == per_block_min[:, None]).sum() > 100       # the clamp binds
    models = E._Models()
    assert models.mel_cut is not None
    for group in (1, 3, 4, 40):
        got = np.concatenate([models.mel_blocks(x[j * 1280:min(j + group, 40) * 1280 + 480])
                              for j in range(0, 40, group)])
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(E._Models(cut_mel=False).mel_blocks(x), ref)   # the whole model


@pytest.mark.parametrize("k", [0, 17])
def test_embeddings_per_call_out_of_range(k):
    with pytest.raises(ValueError, match="embeddings_per_call"):
        E.EmbeddingFrontend(embeddings_per_call=k)


def test_batch_equals_the_stream(words):
    clips = [words[:20000], words[5000:60000], words[:100], words, words[7:7 + 12800], words[:12799]]
    got = E.compute_embeddings_batch(clips)
    for emb, clip in zip(got, clips):
        assert emb.shape == (max(0, len(clip) // 1280 - 9), E.EMBEDDING_DIM)
        np.testing.assert_array_equal(emb, E.EmbeddingFrontend().process(clip))


def test_head_loads_with_its_window(embedding_head, embedding_head_int8):
    for path in (embedding_head, embedding_head_int8):
        m = KeywordModel.load(path)
        assert m.frontend.frontend_type == E.EMBEDDING_FRONTEND
        assert m.window_shape == (16, E.EMBEDDING_DIM)
        scores = m.infer(np.zeros((16, E.EMBEDDING_DIM), np.float32))
        assert scores.dtype == np.uint8 and scores.shape == (3,)


def test_head_for_another_embedding_is_refused(embedding_head, tmp_path):
    data = embedding_head.read_bytes()
    params = dict(read_params(data), **{"fe.embedding_sha256": "ab" * 32})
    other = tmp_path / "other.tflite"
    other.write_bytes(write_params(data, params))
    with pytest.raises(ModelError) as exc:
        KeywordModel.load(other)
    msg = str(exc.value)
    assert "trained on speech embedding abababababab" in msg and E.EMBEDDING_SHA256[:12] in msg
    assert "\n" not in msg
    del params["fe.embedding_sha256"]
    other.write_bytes(write_params(data, params))
    with pytest.raises(ModelError, match="fe.embedding_sha256"):
        KeywordModel.load(other)


def test_microfrontend_shaped_input_is_not_an_embedding_head(tiny_model, tmp_path):
    data = tiny_model.read_bytes()
    params = dict(read_params(data), **{"fe.frontend_type": E.EMBEDDING_FRONTEND,
                                        "fe.embedding_sha256": E.EMBEDDING_SHA256})
    p = tmp_path / "bad.tflite"
    p.write_bytes(write_params(data, params))
    with pytest.raises(ModelError, match=r"is not \[1, N, 96\]"):
        KeywordModel.load(p)


def _run(models, x, sizes, k=1, detection=None):
    sp = KeywordSpotter(models[0], detection, embeddings_per_call=k)
    for m in models[1:]:
        sp.add_model(m)
    found, pos, i = [], 0, 0
    while pos < len(x):
        n = int(sizes[i % len(sizes)])
        found += [(d.model_name, d.keyword, d.time_ms, d.score) for d in sp.feed(x[pos:pos + n])]
        pos, i = pos + n, i + 1
    return found, sp.stats.inferences


@pytest.mark.parametrize("which", ["float", "int8"])
def test_spotter_detections_do_not_depend_on_chunking(words, embedding_head, embedding_head_int8, which):
    model = KeywordModel.load(embedding_head if which == "float" else embedding_head_int8)
    ref = _run([model], words, [len(words)])
    assert {k for _, k, _, _ in ref[0]} >= {"yes", "no"}, ref
    # no scores before 16 embeddings exist: (25 blocks of 1280 samples) / latency 1280
    assert ref[1] == len(words) // 1280 - 24
    rng = np.random.default_rng(5)
    for sizes in ([160], [1000], [4093], list(rng.integers(1, 3000, 30))):
        assert _run([model], words, sizes) == ref


def test_several_heads_share_one_stream_and_keep_their_own_results(words, embedding_head, embedding_head_int8,
                                                                   tiny_model):
    f, q, t = (KeywordModel.load(p) for p in (embedding_head, embedding_head_int8, tiny_model))
    alone = {m.name: _run([m], words, [4000])[0] for m in (f, q, t)}
    together, _ = _run([t, f, q], words, [4000])
    for name, found in alone.items():
        assert [d for d in together if d[0] == name] == found
    sp = KeywordSpotter(f)
    sp.add_model(q)
    sp.add_model(t)
    assert len(sp._streams) == 2          # one embedding stream for both heads, one microfrontend
    chunked, _ = _run([t, f, q], words, [333, 2000])
    assert chunked == together


def test_embeddings_per_call_only_delays_the_heads(words, embedding_head, embedding_head_int8, tiny_model):
    """With 4 embeddings per call every head scores the same windows at the same stream times:
    same detections, times and scores as with 1, microfrontend heads on the same spotter too."""
    x = np.concatenate([words, np.zeros(8000, np.int16)])    # the last group is due before the end
    f, q, t = (KeywordModel.load(p) for p in (embedding_head, embedding_head_int8, tiny_model))
    ref = _run([t, f, q], x, [4000])
    assert {k for _, k, _, _ in ref[0]} >= {"yes", "no"}
    for sizes in ([4000], [160], list(np.random.default_rng(2).integers(1, 6000, 30))):
        got = _run([t, f, q], x, sizes, k=4)
        assert got[0] == ref[0]
        assert ref[1] - 3 * 2 <= got[1] <= ref[1]     # at most 3 steps of each embedding head unrun
    # at the end of a finite stream, flush() runs what is held back: then nothing is missing
    for k in (1, 4, 16):
        sp = KeywordSpotter(f, embeddings_per_call=k)
        found = [(d.keyword, d.time_ms, d.score) for d in sp.feed(words)]
        found += [(d.keyword, d.time_ms, d.score) for d in sp.flush()]
        assert found == [(k_, t, sc) for name, k_, t, sc in _run([f], words, [len(words)])[0]]
        assert sp.stats.inferences == _run([f], words, [len(words)])[1]


def test_reset_on_detection_leaves_an_embedding_stream_running(words, embedding_head):
    """MLTK's reset on detection (suppression_ms <= 1) restarts a microfrontend; an embedding
    stream runs on (it has no adaptive state): detections are those of no suppression, and
    they stop after the words (a restarted stream froze the window: a detection every step)."""
    x = np.concatenate([words, np.zeros(32000, np.int16)])
    f = KeywordModel.load(embedding_head)
    reset = _run([f], x, [3000], detection=replace(f.detection, suppression_ms=0))[0]
    kept = _run([f], x, [3000], detection=replace(f.detection, suppression_ms=2))[0]
    assert reset == kept and {k for _, k, _, _ in reset} >= {"yes", "no"}
    assert max(t for _, _, t, _ in reset) < len(x) * 1000 // 16000 - 1500
    assert _run([f], x, [3000], k=4, detection=replace(f.detection, suppression_ms=0))[0] == reset


@pytest.mark.parametrize("k", [1, 4])
def test_head_input_quantised_frame_by_frame_scores_as_the_whole_window(words, embedding_head_int8, k):
    """An int8 head quantises only the embeddings new since its last inference; its scores
    are those of its whole window quantised afresh, through detections and `reset()` (the
    frames are forgotten)."""
    model = KeywordModel.load(embedding_head_int8)
    oracle = KeywordModel.load(embedding_head_int8)        # its own interpreter and quantiser
    sp = KeywordSpotter(model, replace(model.detection, suppression_ms=0), embeddings_per_call=k)
    assert sp._heads[0].quantizer is not None
    steps: list[tuple[bool, list[int], list[int]]] = []

    def check(now: int, scores: np.ndarray) -> None:
        head = sp._heads[0]
        window = head.stream.window(head.frames)
        same_input = np.array_equal(head.quantizer.input, oracle.prepare_input(window))
        steps.append((same_input, scores.tolist(), oracle.infer(window).tolist()))

    sp.on_scores = check
    found = []
    for part in np.array_split(words, 7):
        found += sp.feed(part)
    sp.reset()
    found += sp.feed(words[: len(words) // 2]) + sp.flush()
    assert found and len(steps) > 100 and len({tuple(s) for _, s, _ in steps}) > 5
    assert all(same for same, _, _ in steps)
    assert [s for _, s, _ in steps] == [o for _, _, o in steps]
