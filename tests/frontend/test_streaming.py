"""Streaming: any chunking of a stream gives the whole-clip features; reset() forgets state."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.frontend import Frontend, compute_features, compute_features_batch

from .conftest import MFCC, MICRO_SPEECH, ON_OFF_V3

CONFIGS = {"on_off_v3": ON_OFF_V3, "micro_speech": MICRO_SPEECH, "mfcc": MFCC}


def _stream(fe: Frontend, x: np.ndarray, sizes) -> np.ndarray:
    outs, pos = [], 0
    for n in sizes:
        if pos >= len(x):
            break
        outs.append(fe.process(x[pos:pos + n]))
        pos += n
    assert pos >= len(x)
    return np.concatenate(outs)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("chunk", [1, 7, 160, 479, 480, 481, 4000, 100_000])
def test_fixed_chunk_sizes_equal_whole_clip(speech_stream, config, chunk, native):
    s = CONFIGS[config]
    x = speech_stream if chunk > 1 else speech_stream[:12000]
    whole = compute_features(x, s, native=False)
    assert whole.shape == ((len(x) - s.window_samples) // s.step_samples + 1, s.n_channels)
    got = _stream(Frontend(s, native=native), x, iter(lambda: chunk, None))
    assert got.dtype == whole.dtype
    np.testing.assert_array_equal(got, whole)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_chunk_sizes_equal_whole_clip(speech_stream, config, native):
    s = CONFIGS[config]
    whole = compute_features(speech_stream, s, native=False)
    rng = np.random.default_rng(3)
    for _ in range(3):
        sizes = iter(lambda: int(rng.integers(0, 2500)), None)   # includes empty chunks
        np.testing.assert_array_equal(_stream(Frontend(s, native=native), speech_stream, sizes), whole)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_reset_gives_a_fresh_frontend(speech_stream, config, native):
    s = CONFIGS[config]
    fe = Frontend(s, native=native)
    first = fe.process(speech_stream)
    fe.process(speech_stream[:1234])          # leave samples and noise estimate behind
    fe.reset()
    np.testing.assert_array_equal(fe.process(speech_stream), first)


def test_state_carries_across_calls(speech_stream, native):
    """The second pass over the same audio differs from the first (noise estimate, DC notch
    and leftover samples carry over), which is what MLTK does on a device."""
    fe = Frontend(ON_OFF_V3, native=native)
    a = fe.process(speech_stream)
    b = fe.process(speech_stream)
    assert a.shape[1] == b.shape[1] == 104
    assert not np.array_equal(a[:50], b[:50])


def test_too_short_input_gives_no_frames(native):
    for s in CONFIGS.values():
        out = compute_features(np.zeros(s.window_samples - 1, np.int16), s, native=native)
        assert out.shape == (0, s.n_channels)
        assert Frontend(s, native=native).process(np.zeros(0, np.int16)).shape == (0, s.n_channels)
        short = compute_features_batch(np.zeros((3, s.window_samples - 1), np.int16), s, native=native)
        assert short.shape == (3, 0, s.n_channels)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_batch_equals_per_clip(speech_stream, config, native):
    s = CONFIGS[config]
    clips = np.stack([speech_stream[i:i + 16000] for i in (0, 5000, 20000)])
    got = compute_features_batch(clips, s, native=native)
    for i in range(3):
        np.testing.assert_array_equal(got[i], compute_features(clips[i], s, native=False))


def test_large_batch_path_equals_per_clip(speech_stream):
    """Batches of 64+ clips run the DC notch vectorised across clips: same result."""
    clips = np.stack([speech_stream[i * 500:i * 500 + 4000] for i in range(70)])
    got = compute_features_batch(clips, ON_OFF_V3)
    for i in (0, 33, 69):
        np.testing.assert_array_equal(got[i], compute_features(clips[i], ON_OFF_V3))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_long_input_in_one_call_equals_streaming(speech_stream, config, native):
    """Inputs longer than the internal step are split inside `process`: same frames."""
    s = CONFIGS[config]
    x = np.tile(speech_stream, 4)
    assert len(x) > 1 << 16
    streamed = _stream(Frontend(s, native=False), x, iter(lambda: 1600, None))
    np.testing.assert_array_equal(compute_features(x, s, native=native), streamed)


def test_batches_beyond_the_internal_batch_size(speech_stream, native):
    clips = np.stack([speech_stream[(i * 37) % 20000:(i * 37) % 20000 + 2000] for i in range(300)])
    got = compute_features_batch(clips, MICRO_SPEECH, native=native)
    assert got.shape[0] == 300
    for i in (0, 255, 256, 299):
        np.testing.assert_array_equal(got[i], compute_features(clips[i], MICRO_SPEECH, native=False))
