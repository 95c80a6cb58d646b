"""Checks a device runs before it accepts a pushed model, and the profile of what it can serve.

`check_manifest` refuses, from the manifest alone and before any byte is downloaded, a model
that is too large or whose frontend or input shape this device cannot serve. `self_test`
loads the assembled model and runs it on silence and on a reference clip: it must load, match
what the manifest declared (classes, frontend, input shape) and produce one finite score per
class. Nothing received is ever executed: a model is data for the TFLite interpreter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from keywire.protocol.errors import KeywireError, ModelRejected, ParamsError
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.protocol.manifest import Manifest, sha256_hex

from ..frontend.embedding import (EMBEDDING_FRONTEND, EMBEDDING_STEP_SAMPLES, FIRST_EMBEDDING_SAMPLES,
                                  compute_embeddings, embedding_window, feature_models)
from ..model import KeywordModel


@dataclass(frozen=True)
class DeviceProfile:
    """What this device can serve: frontends, audio rates, model size."""

    frontends: tuple[str, ...] = ("microfrontend", "mfcc", "speech_embedding")
    sample_rates: tuple[int, ...] = (16000,)
    max_model_bytes: int = 4 * 1024 * 1024


def check_manifest(m: Manifest, profile: DeviceProfile) -> FrontendSettings:
    """Refuse early what this device cannot serve; returns the declared frontend settings."""
    if m.size > profile.max_model_bytes:
        raise ModelRejected(f"model is {m.size} bytes, this device accepts at most {profile.max_model_bytes}")
    try:
        fe = FrontendSettings.from_params(m.frontend)
    except (ParamsError, TypeError, ValueError) as exc:
        raise ModelRejected(f"unusable frontend settings: {exc}") from None
    if not any(k.startswith("fe.") for k in m.frontend):
        raise ModelRejected("manifest declares no frontend settings")
    if fe.frontend_type not in profile.frontends:
        raise ModelRejected(f"frontend {fe.frontend_type!r} is not supported here ({', '.join(profile.frontends)})")
    if fe.sample_rate_hz not in profile.sample_rates:
        raise ModelRejected(f"model needs {fe.sample_rate_hz} Hz audio, this device delivers "
                            f"{', '.join(str(r) for r in profile.sample_rates)} Hz")
    if fe.frontend_type == EMBEDDING_FRONTEND:
        try:
            embedding_window(m.input_shape)
            installed = feature_models().embedding_sha256
        except KeywireError as exc:
            raise ModelRejected(str(exc)) from None
        if fe.embedding_sha256 != installed:
            raise ModelRejected(f"model was trained on speech embedding {fe.embedding_sha256[:12]}, "
                                f"this agent has {installed[:12]} (openwakeword==0.5.1)")
        if not m.classes:
            raise ModelRejected("manifest declares no classes")
        return fe
    dims = list(m.input_shape[1:])
    if int(np.prod(dims)) != fe.n_frames * fe.n_channels or fe.n_frames not in dims:
        raise ModelRejected(f"input shape {list(m.input_shape)} does not match the frontend "
                            f"({fe.n_frames} frames x {fe.n_channels} channels)")
    if not m.classes:
        raise ModelRejected("manifest declares no classes")
    return fe


def reference_clip(fe: FrontendSettings, seed: int = 7) -> np.ndarray:
    """A deterministic non-silent clip (a chirp in noise) when no recorded reference is configured."""
    n = fe.sample_length
    t = np.arange(n) / fe.sample_rate_hz
    f = 300 + 2500 * t / max(t[-1], 1e-6)
    rng = np.random.default_rng(seed)
    x = 8000 * np.sin(2 * np.pi * np.cumsum(f) / fe.sample_rate_hz) + rng.normal(0, 300, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


def self_test(data: bytes, m: Manifest, profile: DeviceProfile,
              clip: Optional[np.ndarray] = None) -> KeywordModel:
    """Verify and exercise the assembled model; `ModelRejected` with the reason otherwise."""
    from ..frontend import compute_features

    if len(data) != m.size:
        raise ModelRejected(f"assembled model is {len(data)} bytes, manifest says {m.size}")
    if sha256_hex(data) != m.sha256:
        raise ModelRejected("assembled model sha256 does not match the manifest")
    fe = check_manifest(m, profile)
    try:
        model = KeywordModel.from_bytes(data, source=f"pushed model {m.name} v{m.version}")
    except KeywireError as exc:
        raise ModelRejected(f"model does not load: {exc}") from None
    if tuple(model.classes) != tuple(m.classes):
        raise ModelRejected(f"model classes {list(model.classes)} differ from the manifest {list(m.classes)}")
    if model.frontend != fe:
        raise ModelRejected("model frontend parameters differ from the manifest")
    if tuple(model.input.shape) != tuple(m.input_shape):
        raise ModelRejected(f"model input shape {list(model.input.shape)} differs from the manifest "
                            f"{list(m.input_shape)}")
    clips: Sequence[tuple[str, np.ndarray]] = (
        ("silence", np.zeros(fe.sample_length, np.int16)),
        ("reference clip", clip if clip is not None else reference_clip(fe)))
    if fe.frontend_type == EMBEDDING_FRONTEND:   # enough audio for the head's N embeddings
        n = model.window_shape[0]
        length = (n - 1) * EMBEDDING_STEP_SAMPLES + FIRST_EMBEDDING_SAMPLES
        clips = tuple((what, np.resize(np.asarray(x, np.int16), length)) for what, x in clips)
    for what, samples in clips:
        try:
            if fe.frontend_type == EMBEDDING_FRONTEND:
                features = compute_embeddings(samples)[-model.window_shape[0]:]
            else:
                features = compute_features(np.asarray(samples, np.int16)[:fe.sample_length], fe)
            scores = model.infer(features)
        except Exception as exc:  # the interpreter may raise anything on a bad graph
            raise ModelRejected(f"inference on {what} failed: {exc}") from None
        if scores.shape != (len(m.classes),) or scores.dtype != np.uint8:
            raise ModelRejected(f"inference on {what} gave shape {scores.shape}, expected ({len(m.classes)},)")
    return model
