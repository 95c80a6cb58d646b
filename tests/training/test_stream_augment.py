"""Augmentation for listening devices: background at an SNR (noise or keyword-free speech),
frontend warm-up on the background before the clip, and `_unknown_` windows of speech."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keywire.protocol.frontend_settings import FrontendSettings
from keywire.training.augment import NoiseBank, augment_waveform, make_speech_window, noise_bank, voiced_rms
from keywire.training.dataset import SPEECH, UNKNOWN, load_dataset
from keywire.training.features import FeatureCache, extract
from keywire.training.recipe import AugmentationSettings, ConfigError, Recipe
from keywire.training.synth import contains_word
from keywire.training.synth_words import word_salad

from tests.fixtures.speech import read_wav, synthesize

FE = FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=40)
PLAIN = AugmentationSettings(time_shift_ms=0, loudness_db=(0.0, 0.0), speed=(1.0, 1.0),
                             pitch_semitones=(0.0, 0.0), noise_probability=1.0)


def _word(tmp_path: Path, text: str = "yes") -> np.ndarray:
    x, _ = read_wav(synthesize(text))
    return x


def test_voiced_rms_ignores_silence_around_the_word() -> None:
    tone = (3000 * np.sin(np.arange(8000) * 0.2)).astype(np.int16)
    padded = np.concatenate([np.zeros(24000, np.int16), tone, np.zeros(24000, np.int16)])
    assert voiced_rms(padded) == pytest.approx(voiced_rms(tone), rel=0.02)
    assert voiced_rms(padded) > 5 * float(np.sqrt(np.mean(padded.astype(float) ** 2))) / 2


def test_noise_is_mixed_at_the_drawn_snr(tmp_path: Path) -> None:
    word = _word(tmp_path)
    rng = np.random.default_rng(3)
    noise = NoiseBank((rng.normal(0, 1000, 48000).astype(np.float32),))
    a = PLAIN.__class__(**{**PLAIN.__dict__, "noise_snr_db": (10.0, 10.0)})
    y = augment_waveform(word, np.random.default_rng(0), a, noise, 16000, 16000).astype(np.float64)
    clean = augment_waveform(word, np.random.default_rng(0), a.__class__(**{**a.__dict__, "noise_probability": 0.0}),
                             noise, 16000, 16000).astype(np.float64)
    n = y - clean
    snr = 20 * np.log10(voiced_rms(clean) / np.sqrt(np.mean(n ** 2)))
    assert snr == pytest.approx(10.0, abs=0.3)
    # a quiet and a loud version of the word get the same SNR, not the same noise level
    loud = augment_waveform((word.astype(np.int32) * 2).clip(-32768, 32767).astype(np.int16),
                            np.random.default_rng(0), a, noise, 16000, 16000).astype(np.float64)
    assert np.sqrt(np.mean((loud - 2 * clean) ** 2)) == pytest.approx(2 * np.sqrt(np.mean(n ** 2)), rel=0.05)


def test_warmup_prepends_background_and_babble_comes_from_speech(tmp_path: Path) -> None:
    word = _word(tmp_path)
    noise = NoiseBank((np.random.default_rng(1).normal(0, 1000, 48000).astype(np.float32),))
    speech = NoiseBank((_word(tmp_path, "the quick brown fox jumps over the lazy dog").astype(np.float32),))
    a = AugmentationSettings(**{**PLAIN.__dict__, "warmup_ms": 500, "babble_probability": 1.0,
                                "noise_dbfs": (-30.0, -30.0)})
    y = augment_waveform(word, np.random.default_rng(0), a, noise, 16000, 16000, speech)
    assert len(y) == 16000 + 8000
    head = y[:8000].astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(head ** 2)) / 32767) > -45  # background before the clip
    # babble: the background is the speech recording (speech has pauses, white noise has none)
    frames = (head[: 8000 // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1)
    assert frames.max() / max(frames.min(), 1e-9) > 30


def test_speech_windows_hold_speech(tmp_path: Path) -> None:
    speech = NoiseBank((_word(tmp_path, "the quick brown fox jumps over the lazy dog").astype(np.float32),))
    w = make_speech_window(5, speech, 16000)
    assert len(w) == 16000 and w.dtype == np.int16
    assert -42 < 20 * np.log10(voiced_rms(w) / 32767) < -13
    assert np.array_equal(w, make_speech_window(5, speech, 16000))  # reproducible from its seed


def test_recipe_adds_speech_unknowns_and_warmed_features(tiny_dataset: Path, tmp_path: Path) -> None:
    babble = synthesize("the quick brown fox jumps over the lazy dog while it rains")
    r = Recipe(data=(str(tiny_dataset),), keywords=("yes", "no"), frontend=FE, max_clips_per_class=6,
               background_speech=(str(babble),), speech_unknown_percentage=50.0,
               augmentation=AugmentationSettings(copies=2, warmup_ms=400, babble_probability=0.5,
                                                 noise_snr_db=(0.0, 20.0)))
    ds = load_dataset(r)
    gen = [c for c in ds.clips["train"] if c.word == SPEECH]
    assert gen and all(c.label == UNKNOWN and c.is_generated for c in gen)
    assert ds.speech_files == [str(babble)]
    cache = FeatureCache(tmp_path / "c", FE, r.augmentation, noise_bank(ds.noise_files, 16000), ds.noise_files,
                         noise_bank(ds.speech_files, 16000), ds.speech_files)
    x, kept = extract(ds.clips["train"], cache, copies=2)
    assert x.shape[1:] == (3, FE.n_frames, FE.n_channels)
    i = kept.index(gen[0])
    assert x[i, 0].max() > 0  # the speech window is not silence
    # a warmed copy's frames differ from the clean clip's (settled noise estimate, background)
    real = next(j for j, c in enumerate(kept) if not c.is_generated)
    assert not np.array_equal(x[real, 0], x[real, 1])


@pytest.mark.parametrize("changes, field", [
    ({"speech_unknown_percentage": 10.0}, "background_speech"),
    ({"augmentation": AugmentationSettings(warmup_ms=-1)}, "augmentation.warmup_ms"),
    ({"augmentation": AugmentationSettings(noise_snr_db=(20.0, 5.0))}, "augmentation.noise_snr_db"),
    ({"augmentation": AugmentationSettings(babble_probability=1.5)}, "augmentation.babble_probability"),
])
def test_bad_stream_augmentation_fields_are_named(changes: dict, field: str) -> None:
    r = Recipe(data=("x",), keywords=("yes",)).replace(**changes)
    with pytest.raises(ConfigError, match=field):
        r.validate()


def test_word_salad_is_reproducible_and_keyword_free() -> None:
    a = word_salad(50, seed=3)
    assert a == word_salad(50, seed=3) and a != word_salad(50, seed=4)
    assert not any(contains_word(t, ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"])
                   for t in a)


def test_passages_cli_reads_word_salad(tmp_path: Path) -> None:
    out = tmp_path / "salad.wav"
    r = subprocess.run([sys.executable, "-m", "keywire.host.cli", "dataset", "passages", "--out", str(out),
                        "--word-salad", "3", "--voices", "en-us", "--forbid", "yes,no"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    x, rate = read_wav(out)
    assert rate == 16000 and len(x) > 16000 * 3
    bad = subprocess.run([sys.executable, "-m", "keywire.host.cli", "dataset", "passages", "--out", str(out),
                          "--word-salad", "-1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--word-salad" in bad.stderr


def test_random_warmup_starts_the_background_anywhere_before_the_clip(tmp_path: Path) -> None:
    word = _word(tmp_path)
    noise = NoiseBank((np.random.default_rng(2).normal(0, 1000, 48000).astype(np.float32),))
    a = AugmentationSettings(**{**PLAIN.__dict__, "warmup_ms": 500, "warmup_random": True,
                                "noise_dbfs": (-30.0, -30.0)})
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(20):
        y = augment_waveform(word, rng, a, noise, 16000, 16000)
        assert len(y) == 16000 + 8000  # same length whatever the warm-up: copies stack
        nz = np.flatnonzero(y[:8000])
        starts.append(int(nz[0]) if len(nz) else 8000)
    assert min(starts) < 800 and max(starts) > 4000  # from a full warm-up to almost none
    fixed = AugmentationSettings(**{**a.__dict__, "warmup_random": False})
    y = augment_waveform(word, np.random.default_rng(0), fixed, noise, 16000, 16000)
    assert np.flatnonzero(y[:8000])[0] < 10  # without it the background fills the whole span


def _bed_pool(tmp_path: Path):
    """Bed material: white noise and a recorded sentence (as WAV files, the way recipes name them)."""
    from keywire.training.augment import stream_bed_pool
    from tests.fixtures.speech import write_wav

    noise = tmp_path / "noise.wav"
    write_wav(noise, np.random.default_rng(4).normal(0, 800, 16000 * 20).astype(np.int16))
    sentence = synthesize("the quick brown fox jumps over the lazy dog while it rains")
    return stream_bed_pool([str(noise)], [str(sentence)], [], 16000)


def test_stream_copies_put_the_word_at_the_drawn_snr_over_a_warm_bed(tmp_path: Path) -> None:
    from keywire.training.augment import stream_mix

    word = _word(tmp_path)
    pool = _bed_pool(tmp_path)
    a = AugmentationSettings(**{**PLAIN.__dict__, "warmup_ms": 600, "stream_probability": 1.0,
                                "stream_snr_db": (10.0, 10.0), "stream_dbfs": (-38.0, -38.0)})
    for seed in range(4):
        y = stream_mix(word, np.random.default_rng(seed), a, pool, 16000, 16000).astype(np.float64)
        assert len(y) == 9600 + 16000
        # the same draws without the word: the bed alone (the word's level is relative to it)
        silent = stream_mix(np.zeros_like(word), np.random.default_rng(seed), a, pool, 16000, 16000)
        bed = silent.astype(np.float64)
        warm_level = 20 * np.log10(np.sqrt(np.mean(bed[:9600] ** 2)) / 32768)
        assert -41 < warm_level < -35  # the background runs before the clip, at the stream's level
        w = y - bed
        v0 = int(np.flatnonzero(np.abs(w) > 1)[0])
        snr = 20 * np.log10(voiced_rms(w) / np.sqrt(np.mean(bed[max(0, v0 - 8000):v0 + 16000] ** 2)))
        assert snr == pytest.approx(10.0, abs=1.5)
    # through augment_waveform: only with a bed pool, and only as often as stream_probability says
    half = AugmentationSettings(**{**a.__dict__, "stream_probability": 0.5, "noise_probability": 0.0})
    rng = np.random.default_rng(1)
    with_bed = [augment_waveform(word, rng, half, NoiseBank(()), 16000, 16000, bed=pool) for _ in range(40)]
    mixed = sum(int(np.any(y[:9600] != 0)) for y in with_bed)
    assert 10 < mixed < 30
    no_bed = [augment_waveform(word, np.random.default_rng(1), half, NoiseBank(()), 16000, 16000) for _ in range(5)]
    assert all(not np.any(y[:9600]) for y in no_bed)


def test_stream_bed_holds_training_speakers_only(tiny_dataset: Path, tmp_path: Path) -> None:
    from keywire.training.train import stream_bed

    r = Recipe(data=(str(tiny_dataset),), keywords=("yes", "no"), frontend=FE,
               augmentation=AugmentationSettings(copies=1, stream_probability=0.5))
    ds = load_dataset(r)
    pool = stream_bed(ds, 16000)
    words = [f for f in pool.files if str(f) not in ds.noise_files]
    train = {c.path for c in ds.clips["train"]}
    held = {c.path for s in ("validation", "test") for c in ds.clips[s]}
    assert words and all(str(f) in train and str(f) not in held for f in words)
    assert abs(float(pool.weights.sum()) - 1.0) < 1e-9
    # the bed is part of the cache key: other material, other features
    bank = noise_bank(ds.noise_files, 16000)
    a = FeatureCache(tmp_path / "c", FE, r.augmentation, bank, ds.noise_files, bed=pool)
    b = FeatureCache(tmp_path / "c", FE, r.augmentation, bank, ds.noise_files,
                     bed=st_pool(ds.noise_files))
    assert a.key != b.key


def st_pool(files):
    from keywire.training.streams import BackgroundPool

    return BackgroundPool(files, 16000)


@pytest.mark.parametrize("changes, field", [
    ({"stream_snr_db": (20.0, 5.0)}, "augmentation.stream_snr_db"),
    ({"stream_probability": 1.5}, "augmentation.stream_probability"),
    ({"stream_dbfs": (-30.0, 3.0)}, "augmentation.stream_dbfs"),
])
def test_bad_stream_mix_fields_are_named(changes: dict, field: str) -> None:
    r = Recipe(data=("x",), keywords=("yes",), augmentation=AugmentationSettings(**changes))
    with pytest.raises(ConfigError, match=field):
        r.validate()
