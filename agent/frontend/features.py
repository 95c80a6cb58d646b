"""The feature family a model names (`fe.frontend_type`), streaming or over whole clips.

`Frontend` is what the spotter streams audio through; `compute_features` and
`compute_features_batch` are the whole-clip forms training and evaluation use (a fresh
state per clip, as MLTK resets per clip). The microfrontend runs in C when it is built
(`native.py`); MFCC runs in numpy. The speech-embedding family has its own engine
(`embedding.py`): its features come from two TFLite models, not from these settings.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from keywire.protocol.errors import AudioError
from keywire.protocol.frontend_settings import FrontendSettings
from .framing import as_int16_mono, frame_count
from .mfcc import MfccFrontend, mfcc_features, validate_mfcc
from .microfrontend import MicroFrontend, micro_features_batch, micro_tables, validate_micro
from .native import native_frontend, use_native

_MAX_CHUNK = 1 << 16     # samples per internal step of numpy `process` (about 4 s at 16 kHz)


def validate_settings(s: FrontendSettings) -> None:
    """Raise `ParamsError` naming the first setting the frontend cannot run with."""
    s.validate()
    if s.frontend_type == "mfcc":
        validate_mfcc(s)
    else:
        validate_micro(s)


class Frontend:
    """Streaming frontend: feed int16 chunks of any size, get the new feature frames.

    Output is uint16 [n_new_frames, channels] for the microfrontend (bit-identical to MLTK's
    AudioFeatureGenerator fed the same stream) and float32 [n_new_frames, n_coefficients]
    for `fe.frontend_type == "mfcc"`. State (DC notch, leftover samples, noise estimate)
    carries over between calls until `reset()`.

    `native`: None (default) runs the microfrontend in C when `keywire.agent._cfrontend` is
    built and in numpy otherwise; True requires the C one (RuntimeError if it is not built);
    False forces numpy. Both give identical features. MFCC always runs in numpy.
    """

    # MLTK's reset on detection (suppression_ms <= 1) restarts this frontend's state.
    resets_on_detection = True

    def __init__(self, settings: FrontendSettings, native: Optional[bool] = None) -> None:
        validate_settings(settings)
        self.settings = settings
        self._native = None
        if settings.frontend_type == "mfcc":
            self._engine = MfccFrontend(settings)
        elif use_native(native):
            self._native = self._engine = native_frontend(settings)
        else:
            self._engine = MicroFrontend(settings)

    @property
    def native(self) -> bool:
        """Whether this frontend runs the compiled implementation."""
        return self._native is not None

    @property
    def n_channels(self) -> int:
        return self.settings.n_channels

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32 if self.settings.frontend_type == "mfcc" else np.uint16)

    def reset(self) -> None:
        """Back to the state of a fresh frontend (MLTK resets per clip)."""
        self._engine.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Consume int16 samples (mono, any count); return the feature frames completed by them."""
        x = as_int16_mono(samples)
        c = self._native
        if c is not None:
            if not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)
            out = np.empty((c.frames_for(len(x)), self.n_channels), dtype=np.uint16)
            c.process(x, out)
            return out
        if len(x) > _MAX_CHUNK:
            # Long inputs (whole files) go through in pieces: same result, bounded memory.
            return np.concatenate([self._engine.process(x[i:i + _MAX_CHUNK])
                                   for i in range(0, len(x), _MAX_CHUNK)])
        return self._engine.process(x)

    def flush(self) -> np.ndarray:
        """Frames held back: none (every frame is returned as soon as its samples are in);
        present for the engine contract."""
        return np.zeros((0, self.n_channels), dtype=self.dtype)

    def close(self) -> None:
        """Nothing to release; present for the engine contract."""



def compute_features(samples: np.ndarray, settings: FrontendSettings,
                     native: Optional[bool] = None) -> np.ndarray:
    """Features of one whole clip from a fresh frontend: [frames, channels]
    (uint16, or float32 for MFCC). frames = (len - window) // step + 1.
    `native` as for `Frontend`."""
    return Frontend(settings, native=native).process(samples)


def compute_features_batch(clips: np.ndarray, settings: FrontendSettings,
                           native: Optional[bool] = None) -> np.ndarray:
    """Features of many equal-length clips [n, samples], each from a fresh frontend:
    [n, frames, channels]. In C clip by clip, or in numpy vectorised over clips (for training
    feature extraction). `native` as for `Frontend`."""
    clips = np.asarray(clips)
    if clips.ndim != 2:
        raise AudioError(f"compute_features_batch needs a [clips, samples] array, got shape {clips.shape}")
    if clips.dtype != np.int16:
        clips = as_int16_mono(clips.reshape(-1)).reshape(clips.shape)
    if settings.frontend_type == "mfcc":
        validate_settings(settings)
        return mfcc_features(clips, settings)
    t = micro_tables(settings)
    if use_native(native):
        b, length = clips.shape
        out = np.empty((b, frame_count(length, t.size, t.step), t.n_channels), dtype=np.uint16)
        if b:
            native_frontend(settings).process_batch(np.ascontiguousarray(clips), b, out)
        return out
    return micro_features_batch(clips, settings)
