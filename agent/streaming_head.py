"""A conv speech-embedding head run one new embedding at a time (its step model).

A head scores the last N embeddings every inference, though only one or two of them are new.
Heads made by `keywire train` carry a step model (metadata entry `KW_STEPv1`; see
training/streaming_head.py): inputs, the last k embeddings and a float state of the conv
layers' recent outputs; outputs, the window's scores and the next state. `HeadStepper` keeps
that state for one head on one stream, runs one step per new embedding, and starts over from
a zero state over the whole window (N-k+1 steps) whenever more than that changed (the first
window, a reset, a gap). The scores follow the head's own convention: q + 128 for an int8
head (its step model's probabilities x 256), p x 255 for a float head.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from keywire.protocol.errors import ModelError
from keywire.protocol.sl_params import find_metadata

from .interpreter import error_line, load_interpreter

STEP_METADATA = "KW_STEPv1"


def step_model_bytes(model: bytes) -> Optional[bytes]:
    """The step model a head carries, or None."""
    return find_metadata(model, STEP_METADATA)


class HeadStepper:
    """Streaming state of one head's step model; not thread-safe (one per head)."""

    def __init__(self, data: bytes, n_frames: int, n_classes: int, int8_scores: bool,
                 source: str = "<bytes>", num_threads: int = 1) -> None:
        """`data`: the step model; `n_frames`: the head's window N; `int8_scores`: scores as
        the int8 head gives them (q + 128) rather than as a float head (p x 255)."""
        try:
            self._interp = interp = load_interpreter(data, num_threads=num_threads)
        except ModelError as exc:
            raise ModelError(f"{source}: its step model: {exc}") from None
        self._source = source
        try:
            runner = interp.get_signature_runner()
            ins, outs = dict(runner.get_input_details()), dict(runner.get_output_details())
            del runner          # it holds views of the interpreter's buffers
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ModelError(f"{source}: its step model has no signature ({exc})") from None
        if set(ins) != {"embeddings", "state"} or set(outs) != {"output_0", "output_1"}:
            raise ModelError(f"{source}: its step model has inputs {sorted(ins)} and outputs "
                             f"{sorted(outs)}; expected embeddings, state -> scores, state")
        emb_shape = tuple(int(d) for d in ins["embeddings"]["shape"])
        state_shape = tuple(int(d) for d in ins["state"]["shape"])
        if (len(emb_shape) != 3 or not 2 <= emb_shape[1] <= n_frames
                or tuple(outs["output_0"]["shape"]) != (1, n_classes)
                or tuple(outs["output_1"]["shape"]) != state_shape):
            raise ModelError(f"{source}: its step model's shapes {list(emb_shape)}, {list(state_shape)} "
                             f"do not fit a window of {n_frames} embeddings and {n_classes} classes")
        self.kernel = emb_shape[1]
        self.n_frames = n_frames
        self._emb_idx, self._state_idx = ins["embeddings"]["index"], ins["state"]["index"]
        self._scores_idx, self._next_idx = outs["output_0"]["index"], outs["output_1"]["index"]
        self._emb_shape = emb_shape
        self._zero = np.zeros(state_shape, dtype=np.float32)
        self._state = self._zero
        self._factor = 256.0 if int8_scores else 255.0
        self._round = int8_scores
        self._buf = np.zeros(n_classes, dtype=np.float32)
        self._scores: Optional[np.ndarray] = None

    def reset(self) -> None:
        """The next `scores` starts over from the whole window."""
        self._state = self._zero
        self._scores = None

    def scores(self, window: np.ndarray, new: int) -> np.ndarray:
        """uint8 scores of `window` [N, 96] (float embeddings), whose last `new` rows were not
        in the window of the previous call."""
        n, k = self.n_frames, self.kernel
        if self._scores is not None and new == 0:
            return self._scores
        if self._scores is None or new > n - k:
            self._state, new = self._zero, n - k + 1
        set_tensor, state_idx, emb_idx, shape = self._interp.set_tensor, self._state_idx, self._emb_idx, self._emb_shape
        invoke, get_tensor, next_idx = self._interp.invoke, self._interp.get_tensor, self._next_idx
        state = self._state
        try:
            for t in range(n - new + 1, n + 1):
                set_tensor(emb_idx, window[t - k:t].reshape(shape))
                set_tensor(state_idx, state)
                invoke()
                state = get_tensor(next_idx)
            raw = get_tensor(self._scores_idx)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{self._source}: the TFLite runtime cannot run its step model: {error_line(exc)}") from None
        self._state = state
        p = self._buf
        np.multiply(raw.reshape(-1), self._factor, out=p)
        if self._round:
            p += 0.5
        np.minimum(p, 255.0, out=p)
        self._scores = p.astype(np.uint8)    # p >= 0: a probability
        return self._scores
