"""Training features come from the agent's frontend and are cached on disk."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from keywire.agent.frontend import compute_features, to_model_input
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.training.audio import fit_length, load_clip
from keywire.training.augment import noise_bank, spec_augment
from keywire.training.dataset import load_dataset
from keywire.training.features import FeatureCache, extract
from keywire.training.recipe import AugmentationSettings, Recipe

from tests.fixtures.speech import read_wav, write_wav

FE = FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=40)


def small_recipe(data: Path) -> Recipe:
    return Recipe(data=(str(data),), keywords=("yes", "no"), frontend=FE,
                  augmentation=AugmentationSettings(copies=2), max_clips_per_class=6)


def test_second_extraction_comes_from_the_cache(tiny_dataset: Path, tmp_path: Path) -> None:
    r = small_recipe(tiny_dataset)
    ds = load_dataset(r)
    clips = ds.clips["train"]
    nb = noise_bank(ds.noise_files, 16000)
    c1 = FeatureCache(tmp_path, FE, r.augmentation, nb, ds.noise_files)
    x1, kept = extract(clips, c1, copies=2)
    assert c1.stats.computed == len(clips) and c1.stats.cached == 0
    assert x1.shape == (len(clips), 3, FE.n_frames, FE.n_channels) and x1.dtype == np.uint16
    c2 = FeatureCache(tmp_path, FE, r.augmentation, nb, ds.noise_files)
    x2, _ = extract(clips, c2, copies=2)
    assert c2.stats.cached == len(clips) and c2.stats.computed == 0
    assert np.array_equal(x1, x2)
    # another frontend setting is another cache
    c3 = FeatureCache(tmp_path, FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=32),
                      r.augmentation, nb, ds.noise_files)
    extract(clips[:2], c3, copies=2)
    assert c3.stats.computed == 2
    # the clean copy is exactly what the agent computes for the clip
    real = next(i for i, c in enumerate(kept) if not c.is_generated)
    want = compute_features(fit_length(load_clip(kept[real].path, 16000), FE.sample_length), FE)
    assert np.array_equal(x1[real, 0], want)
    assert not np.array_equal(x1[real, 0], x1[real, 1])  # augmented copies differ


def test_other_rates_are_resampled_and_corrupt_files_named(tiny_dataset: Path, tmp_path: Path) -> None:
    d = tmp_path / "ds"
    shutil.copytree(tiny_dataset, d)
    src = sorted((d / "yes").glob("*.wav"))[0]
    x, _ = read_wav(src)
    write_wav(d / "yes" / "eightk_nohash_0.wav", x[::2], rate=8000)
    (d / "yes" / "broken_nohash_0.wav").write_bytes(b"RIFF\x00\x00junk")
    r = small_recipe(d).replace(max_clips_per_class=0)
    ds = load_dataset(r)
    cache = FeatureCache(tmp_path / "c", FE, r.augmentation, noise_bank(ds.noise_files, 16000), ds.noise_files)
    clips = [c for s in ds.clips.values() for c in s if "eightk" in c.path or "broken" in c.path]
    assert len(clips) == 2
    x, kept = extract(clips, cache, copies=0)
    assert [Path(c.path).name for c in kept] == ["eightk_nohash_0.wav"]
    assert x.shape[1:] == (1, FE.n_frames, FE.n_channels)
    assert any("broken_nohash_0.wav" in s for s in cache.stats.skipped)


def test_spec_augment_masks_with_silence_value() -> None:
    rng = np.random.default_rng(0)
    a = AugmentationSettings(time_masks=1, time_mask_frames=5, freq_masks=1, freq_mask_channels=4,
                             specaugment_probability=1.0)
    q = to_model_input(np.full((49, 40), 300, np.uint16), FE).astype(np.float32)
    b = np.repeat(q[None, :, :, None], 8, axis=0)
    out = spec_augment(b.copy(), rng, a, fill=-128.0)
    assert (out == -128).any() and (out != -128).any()
