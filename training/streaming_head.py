"""The streaming form of a conv speech-embedding head: one step per new embedding.

A conv head (`zoo.embedding_conv`, or an ensemble of them) scores a window of the last N
embeddings with L valid 1-D convolutions, a global max pool and dense layers. A new window
shares N-1 embeddings with the previous one, so each conv layer has exactly one new output
position per embedding. The step model computes only those: its inputs are the last k
embeddings (k: the kernel) and a state holding, per member, the last k-1 outputs of each
conv layer that feeds another one and the last P-1 outputs of the last conv layer (P = N -
L(k-1), the positions the pool reads); its outputs are the scores of the full window and the
next state. After N-k+1 steps from any state, the scores equal the full model's on the
window of those embeddings (checked in float when the step model is made).

The step model is int8 inside with float inputs and outputs (the converter's quantize and
dequantize at the edges), so the state keeps its values between steps without the agent
knowing any quantisation. It travels inside the head's .tflite as the `KW_STEPv1` metadata
entry; an agent without it (or a head without it) runs the whole window every inference.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np

log = logging.getLogger("keywire.training.streaming_head")

_HEAD_LAYERS = {"rescale", "noise", "in_drop", "pool", "drop", "fc", "scores"}


@dataclass(frozen=True)
class _Member:
    """The layers of one conv head, in order."""

    rescale: Any
    convs: tuple[Any, ...]
    norms: tuple[Any, ...]
    relus: tuple[Any, ...]
    pool: Any
    fc: Any
    scores: Any

    @property
    def kernel(self) -> int:
        return int(self.convs[0].kernel_size[0])

    def state_sizes(self, n_frames: int) -> list[tuple[int, int]]:
        """(rows, channels) of each state block: k-1 outputs of every conv layer but the last,
        P-1 of the last."""
        k, layers = self.kernel, len(self.convs)
        sizes = [(k - 1, int(c.filters)) for c in self.convs[:-1]]
        sizes.append((n_frames - layers * (k - 1) - 1, int(self.convs[-1].filters)))
        return sizes


def _members(model: Any) -> list[Any]:
    """The heads a model is made of: itself, or an ensemble's members."""
    import keras

    subs = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return subs if subs else [model]


def _member_layers(m: Any) -> Optional[_Member]:
    """The layers of an `embedding_conv` head, or None for any other architecture."""
    names = [layer.name for layer in m.layers]
    convs = [n for n in names if n.startswith("c") and n.endswith("_conv")]
    expected = {"embeddings"} | _HEAD_LAYERS | {f"c{i}_{s}" for i in range(len(convs))
                                                 for s in ("conv", "bn", "relu")}
    if not convs or not set(names) <= expected or not {"rescale", "pool", "fc", "scores"} <= set(names):
        return None
    get = m.get_layer
    member = _Member(get("rescale"), tuple(get(f"c{i}_conv") for i in range(len(convs))),
                     tuple(get(f"c{i}_bn") for i in range(len(convs))),
                     tuple(get(f"c{i}_relu") for i in range(len(convs))), get("pool"), get("fc"), get("scores"))
    for c in member.convs:
        if (c.padding != "valid" or tuple(c.strides) != (1,) or tuple(c.dilation_rate) != (1,)
                or int(c.kernel_size[0]) != member.kernel):
            return None
    return member


def step_model(model: Any, n_frames: int, batch: Optional[int] = None) -> Optional[Any]:
    """The Keras step model of a conv head over `n_frames` embeddings, or None when the model
    is not made of `embedding_conv` heads of one kernel size with at least 2 positions pooled.
    `batch=1`: static shapes for the export (no shape arithmetic at every step)."""
    import keras
    from keras import layers

    members = [_member_layers(m) for m in _members(model)]
    if not members or any(m is None for m in members) or len({m.kernel for m in members}) != 1:
        return None
    k, channels = members[0].kernel, int(model.input_shape[-1])
    if k < 2 or any(m.state_sizes(n_frames)[-1][0] < 1 for m in members):
        return None
    emb = keras.Input(shape=(k, channels), batch_size=batch, name="embeddings")
    sizes = [sum(r * c for r, c in m.state_sizes(n_frames)) for m in members]
    state = keras.Input(shape=(sum(sizes),), batch_size=batch, name="state")
    offset, scores, next_state = 0, [], []
    for j, (m, size) in enumerate(zip(members, sizes)):
        s, n = _member_step(m, j, k, channels, n_frames, batch)(
            [emb, state[:, offset:offset + size]])
        offset += size
        scores.append(s)
        next_state.append(n)
    out = scores[0] if len(scores) == 1 else layers.Average(name="mean_scores")(scores)
    new = next_state[0] if len(next_state) == 1 else layers.Concatenate(axis=1, name="next_state")(next_state)
    return keras.Model([emb, state], [out, new], name=f"{model.name}_step")


def _member_step(m: _Member, j: int, k: int, channels: int, n_frames: int, batch: Optional[int]) -> Any:
    """One member's step: (last k embeddings, its state) -> (scores, next state)."""
    import keras
    from keras import layers

    blocks = m.state_sizes(n_frames)
    emb = keras.Input(shape=(k, channels), batch_size=batch, name=f"m{j}_embeddings")
    state = keras.Input(shape=(sum(r * c for r, c in blocks),), batch_size=batch, name=f"m{j}_state")
    x, offset, next_state = m.rescale(emb), 0, []
    for i, (conv, norm, relu) in enumerate(zip(m.convs, m.norms, m.relus)):
        if i:
            rows, ch = blocks[i - 1]
            past = layers.Reshape((rows, ch), name=f"s{i}")(state[:, offset:offset + rows * ch])
            offset += rows * ch
            x = layers.Concatenate(axis=1, name=f"seq{i}")([past, x])
            next_state.append(layers.Flatten(name=f"next{i}")(x[:, 1:]))
        x = relu(norm(conv(x)))
    rows, ch = blocks[-1]
    past = layers.Reshape((rows, ch), name="s_pool")(state[:, offset:offset + rows * ch])
    seq = layers.Concatenate(axis=1, name="seq_pool")([past, x])
    next_state.append(layers.Flatten(name="next_pool")(seq[:, 1:]))
    new = next_state[0] if len(next_state) == 1 else layers.Concatenate(axis=1, name="next")(next_state)
    return keras.Model([emb, state], [m.scores(m.fc(m.pool(seq))), new], name=f"m{j}_step")


def run_steps(step: Any, windows: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Float scores of `windows` [n, N, 96] computed step by step from a zero state, and the
    (embeddings, state) inputs of the last step of each (a representative set)."""
    k = int(step.inputs[0].shape[1])
    n, n_frames = windows.shape[0], windows.shape[1]
    state = np.zeros((n, int(step.inputs[1].shape[1])), dtype=np.float32)
    scores = None
    last: list[tuple[np.ndarray, np.ndarray]] = []
    for t in range(k - 1, n_frames):
        emb = windows[:, t - k + 1:t + 1].astype(np.float32)
        if t == n_frames - 1:
            last = [(emb[i:i + 1], state[i:i + 1]) for i in range(n)]
        scores, state = (np.asarray(v) for v in step([emb, state], training=False))
    return np.asarray(scores), last


def to_step_tflite(model: Any, windows: np.ndarray, int8: bool = True) -> Optional[bytes]:
    """The step model (float inputs and outputs; int8 inside with `int8`, calibrated on
    `windows` [n, N, 96] of training embeddings) of a conv head, or None for a head that has
    no step form or whose step form does not reproduce it (a warning says so)."""
    import tensorflow as tf

    from .export import _convert, _converter

    windows = np.asarray(windows, dtype=np.float32)
    step = step_model(model, windows.shape[1])
    if step is None:
        return None
    full = np.asarray(model(windows, training=False))
    stepped, last = run_steps(step, windows)
    gap = float(np.max(np.abs(full - stepped)))
    if gap > 1e-4:      # a layer that is not what its name says: the head runs whole
        log.warning("the step form of %s differs from the model by %.2g; exported without it", model.name, gap)
        return None

    def gen() -> Iterable[dict[str, np.ndarray]]:
        for emb, state in last:
            yield {"embeddings": emb, "state": state}

    conv = _converter(step_model(model, windows.shape[1], batch=1))  # static shapes: slices fold
    if not int8:
        return _convert(conv)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return _convert(conv)


def with_step_model(model: Any, windows: np.ndarray, tflite: bytes, int8: bool) -> bytes:
    """The head's .tflite carrying its step model (unchanged for a head without a step form)."""
    from keywire.agent.streaming_head import STEP_METADATA
    from keywire.protocol.sl_params import write_metadata

    step = to_step_tflite(model, windows, int8)
    return tflite if step is None else write_metadata(tflite, STEP_METADATA, step)
