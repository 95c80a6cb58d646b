"""Features for training, computed by the agent's own frontend and cached on disk.

Each clip gives an array [1 + copies, frames, channels]: the clean clip, then `copies`
waveform-augmented versions. The cache key is the frontend settings, the augmentation
settings, the number of copies and the file's content hash, so a second run (or another
recipe with the same frontend) skips extraction, and any change recomputes.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from keywire.protocol.frontend_settings import FrontendSettings

from .audio import fit_length, load_clip
from .clip_cache import CacheStats, ClipCache, bed_id, extract, file_id  # noqa: F401 (extract re-exported)
from .augment import NoiseBank, augment_waveform, make_silence, make_speech_window
from .dataset import SILENCE, Clip
from .recipe import AugmentationSettings
from .streams import BackgroundPool

log = logging.getLogger("keywire.training")
FEATURE_VERSION = "2"  # bump when extraction/augmentation code changes meaning


def default_cache_dir() -> Path:
    """`$KEYWIRE_CACHE` or `~/.cache/keywire` (features are large, keep them out of the repo)."""
    return Path(os.environ.get("KEYWIRE_CACHE", Path.home() / ".cache" / "keywire")) / "features"


def clip_features(samples: np.ndarray, fe: FrontendSettings) -> np.ndarray:
    """Frontend output for one model input clip, via the agent's frontend (fresh state per clip)."""
    from keywire.agent.frontend import compute_features

    return np.asarray(compute_features(samples, fe))


def batch_features(clips: np.ndarray, fe: FrontendSettings) -> np.ndarray:
    """Frontend output for equal-length clips [n, samples] (vectorised, fresh state per clip)."""
    from keywire.agent.frontend import compute_features_batch

    return np.asarray(compute_features_batch(clips, fe))


def model_input(features: np.ndarray, fe: FrontendSettings) -> np.ndarray:
    """What the model's (float) training input sees: the int8 values the device feeds the
    int8 model (MLTK mapping), as float32; MFCC features pass through."""
    if fe.frontend_type == "mfcc":
        return np.asarray(features, dtype=np.float32)
    from keywire.agent.frontend import to_model_input

    return to_model_input(features, fe).astype(np.float32)


FeatureStats = CacheStats  # the name callers know


class FeatureCache(ClipCache):
    """Disk cache of per-clip feature copies under `root/<settings hash>/`."""

    def __init__(self, root: Path, fe: FrontendSettings, aug: AugmentationSettings,
                 noise: NoiseBank, noise_files: Sequence[str],
                 speech: NoiseBank = NoiseBank(()), speech_files: Sequence[str] = (),
                 bed: Optional[BackgroundPool] = None) -> None:
        self.fe, self.aug, self.noise, self.speech = fe, aug, noise, speech
        self.bed = bed if aug.stream_probability > 0 else None
        cfg = {"fe": dataclasses.asdict(fe), "aug": dataclasses.asdict(aug), "v": FEATURE_VERSION,
               "noise": [file_id(f) for f in noise_files]}
        if speech_files:
            cfg["speech"] = [file_id(f) for f in speech_files]
        if self.bed is not None:
            cfg["bed"] = bed_id(self.bed)
        super().__init__(root, cfg)

    def empty(self, copies: int) -> np.ndarray:
        return np.zeros((0, 1 + copies, self.fe.n_frames, self.fe.n_channels), np.uint16)

    def _compute(self, clip: Clip, copies: int, seed: int) -> np.ndarray:
        fe = self.fe
        length = fe.sample_length
        if clip.is_generated:
            raw = base = generated_clip(clip, self.noise, self.speech, length)
        else:
            raw = load_clip(clip.path, fe.sample_rate_hz)
            base = fit_length(raw, length)
        rng = np.random.default_rng(seed)
        if clip.is_generated and clip.label == SILENCE:  # silence copies: fresh noise, other level
            waves = [base] + [make_silence(int(rng.integers(1 << 31)), self.noise, length) for _ in range(copies)]
            return batch_features(np.stack(waves), fe)
        clean = batch_features(base[None], fe)
        if not copies:
            return clean
        waves = [augment_waveform(raw, rng, self.aug, self.noise, length, fe.sample_rate_hz, self.speech, self.bed)
                 for _ in range(copies)]
        # Augmented copies start with `warmup_ms` of their background; keep the clip's frames.
        feats = batch_features(np.stack(waves), fe)[:, -fe.n_frames:]
        return np.concatenate([clean, feats])


def generated_clip(clip: Clip, noise: NoiseBank, speech: NoiseBank, length: int) -> np.ndarray:
    """The audio of a generated clip: `_silence_` noise, or an `_unknown_` speech window."""
    if clip.label == SILENCE:
        return make_silence(clip.generated_seed or 0, noise, length)
    return make_speech_window(clip.generated_seed or 0, speech, length)
