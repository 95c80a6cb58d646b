"""A keyword model: a .tflite plus its SL_PARAMSv1 parameters, checked once at load.

`KeywordModel` is the recognizer stage's contract: give it a window of frontend features
(uint16 microfrontend frames, MFCCs, or speech embeddings for a head with
`fe.frontend_type = "speech_embedding"`), get back one uint8 score per class (MLTK's
convention, probability x 256).
"""
from __future__ import annotations

import hashlib
import logging
from functools import cached_property
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from keywire.protocol.detection import DetectionSettings
from keywire.protocol.errors import ModelError, ParamsError, file_error
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.protocol.sl_params import read_params

from .frontend import FloatQuantizer, WindowQuantizer, to_model_input
from .frontend.embedding import EMBEDDING_FRONTEND, embedding_window, feature_models
from .interpreter import error_line, load_interpreter
from .streaming_head import HeadStepper, step_model_bytes

log = logging.getLogger("keywire.agent.model")


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int


@dataclass
class KeywordModel:
    """A loaded model. Create with `KeywordModel.load` or `KeywordModel.from_bytes`."""

    data: bytes
    params: dict[str, Any]
    classes: tuple[str, ...]
    frontend: FrontendSettings
    detection: DetectionSettings
    input: TensorInfo
    output: TensorInfo
    source: str = "<bytes>"
    _interp: Any = field(default=None, repr=False)
    _in_idx: int = field(default=0, repr=False)
    _out_idx: int = field(default=0, repr=False)
    _quantizer: Optional[FloatQuantizer] = field(default=None, repr=False)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: Union[str, Path], num_threads: int = 1) -> "KeywordModel":
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise file_error(exc, ModelError, "model file", p) from None
        return cls.from_bytes(data, source=str(p), num_threads=num_threads)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>", num_threads: int = 1) -> "KeywordModel":
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError(f"{source} is not a TFLite model")
        try:
            params = read_params(data)
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}") from None
        interp = load_interpreter(data, num_threads=num_threads)
        inp = _tensor_info(interp.get_input_details()[0])
        out = _tensor_info(interp.get_output_details()[0])
        classes = tuple(str(c) for c in params.get("classes", ()))
        if not classes:
            raise ModelError(f"{source} has no 'classes' parameter (SL_PARAMSv1)")
        n_out = int(np.prod(out.shape[1:])) if len(out.shape) > 1 else int(out.shape[0])
        if n_out != len(classes):
            raise ModelError(f"{source} has {n_out} outputs but {len(classes)} classes {list(classes)}")
        if not any(k.startswith("fe.") for k in params):
            raise ModelError(f"{source} has no frontend (fe.*) parameters; it cannot take audio")
        try:
            frontend = FrontendSettings.from_params(params)
            detection = DetectionSettings.from_params(params)
            detection.validate(len(classes))
        except ParamsError as exc:
            raise ModelError(f"{source}: {exc}") from None
        model = cls(data=bytes(data), params=params, classes=classes, frontend=frontend,
                    detection=detection, input=inp, output=out, source=source, _interp=interp,
                    _in_idx=interp.get_input_details()[0]["index"],
                    _out_idx=interp.get_output_details()[0]["index"])
        model._check_input_shape()
        # A corrupt model can load and still fail in the runtime at its first invocation
        # (kernel prepare, delegate, bad quantisation): refuse it here, not in the audio loop.
        # XNNPACK refuses to prepare some valid graphs; those run on the builtin kernels.
        probe = np.zeros(model.window_shape, dtype=np.uint16)
        try:
            model.infer(probe)
        except ModelError as exc:
            if "XNNPACK" not in str(exc) and "Delegate" not in str(exc):
                raise
            log.warning("%s: XNNPACK cannot run this model (%s); using the builtin kernels", source, exc)
            interp = load_interpreter(data, num_threads=num_threads, default_delegates=False)
            model._interp = interp
            model._in_idx = interp.get_input_details()[0]["index"]
            model._out_idx = interp.get_output_details()[0]["index"]
            model.infer(probe)
        stepper = model.stepper(num_threads)
        if stepper is not None:     # a broken step model is refused at load too
            stepper.scores(np.zeros(model.window_shape, dtype=np.float32), 0)
        return model

    def _check_input_shape(self) -> None:
        if self.frontend.frontend_type == EMBEDDING_FRONTEND:
            self._check_embedding_head()
            return
        frames, channels = self.frontend.n_frames, self.frontend.n_channels
        dims = [d for d in self.input.shape[1:]]
        if int(np.prod(dims)) != frames * channels or frames not in dims:
            raise ModelError(
                f"{self.source}: input shape {list(self.input.shape)} does not match its frontend "
                f"settings ({frames} frames x {channels} channels from fe.sample_length_ms="
                f"{self.frontend.sample_length_ms}, fe.window_step_ms={self.frontend.window_step_ms})")
        if self.input.dtype not in (np.int8, np.uint8, np.float32):
            raise ModelError(f"{self.source}: unsupported input type {self.input.dtype}")

    def _check_embedding_head(self) -> None:
        """A speech-embedding head: input [1, N, 96], trained on the embedding installed here."""
        try:
            embedding_window(self.input.shape)
        except ModelError as exc:
            raise ModelError(f"{self.source}: {exc}") from None
        if self.input.dtype not in (np.int8, np.uint8, np.float32):
            raise ModelError(f"{self.source}: unsupported input type {self.input.dtype}")
        installed = feature_models().embedding_sha256
        wanted = self.frontend.embedding_sha256
        if wanted != installed:
            raise ModelError(f"{self.source} was trained on speech embedding {wanted[:12]}, "
                             f"this agent has {installed[:12]} (openwakeword==0.5.1)")

    @property
    def window_shape(self) -> tuple[int, int]:
        """(frames, channels) of the feature window one inference reads."""
        if self.frontend.frontend_type == EMBEDDING_FRONTEND:
            return embedding_window(self.input.shape), self.frontend.n_channels
        return self.frontend.n_frames, self.frontend.n_channels

    # ---------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return str(self.params.get("name") or Path(self.source).stem)

    @property
    def version(self) -> str:
        return str(self.params.get("version", ""))

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def class_index(self, name: str) -> int:
        """Index of a class by name; `ModelError` naming the known classes otherwise."""
        try:
            return self.classes.index(name)
        except ValueError:
            raise ModelError(f"unknown class {name!r}; the model has {list(self.classes)}") from None

    # ---------------------------------------------------------------- inference
    def prepare_input(self, features: np.ndarray) -> np.ndarray:
        """Model input tensor from a [frames, channels] feature window (uint16 or MFCC float)."""
        fe = self.frontend
        if fe.frontend_type == EMBEDDING_FRONTEND:
            x = np.asarray(features, dtype=np.float32)
            if self.input.dtype == np.float32:
                return x.reshape(self.input.shape)
            if self._quantizer is None:
                self._quantizer = FloatQuantizer(self.input.shape, self.input.scale,
                                                 self.input.zero_point, self.input.dtype)
            return self._quantizer(x)
        if fe.frontend_type == "mfcc":
            x = np.asarray(features, dtype=np.float32)
            if self.input.dtype == np.float32:
                return x.reshape(self.input.shape)
            q = np.round(x / self.input.scale) + self.input.zero_point
            info = np.iinfo(self.input.dtype)
            return np.clip(q, info.min, info.max).astype(self.input.dtype).reshape(self.input.shape)
        if self.input.dtype == np.int8:
            return to_model_input(features, fe).reshape(self.input.shape)
        if self.input.dtype == np.uint8:
            return (to_model_input(features, fe).astype(np.int16) + 128).astype(np.uint8).reshape(self.input.shape)
        x = np.asarray(features, dtype=np.float32)
        rescale = float(self.params.get("samplewise_norm.rescale", 0) or 0)
        if rescale:
            x = x * rescale
        if self.params.get("samplewise_norm.mean_and_std"):
            x = (x - x.mean()) / max(float(x.std()), 1e-6)
        return x.reshape(self.input.shape)

    def window_quantizer(self) -> Optional[WindowQuantizer]:
        """A streaming caller's own input window that quantises each new frame once (same
        values as `prepare_input`), for a head whose input is quantised value by value:
        int8/uint8 speech-embedding heads. None for every other model."""
        if self.frontend.frontend_type != EMBEDDING_FRONTEND or self.input.dtype == np.float32:
            return None
        return WindowQuantizer(self.input.shape, self.input.scale, self.input.zero_point, self.input.dtype)

    def stepper(self, num_threads: int = 1) -> Optional[HeadStepper]:
        """A new streaming state for this head's step model (one per head on a stream), or
        None for a model without one (every model but conv speech-embedding heads made by
        `keywire train`)."""
        if self.frontend.frontend_type != EMBEDDING_FRONTEND:
            return None
        data = step_model_bytes(self.data)
        if data is None:
            return None
        return HeadStepper(data, self.window_shape[0], len(self.classes), self.output.dtype != np.float32,
                           source=self.source, num_threads=num_threads)

    def infer(self, features: np.ndarray) -> np.ndarray:
        """uint8 score per class for one feature window (MLTK's score convention)."""
        return self.infer_input(self.prepare_input(features))

    def infer_input(self, model_input: np.ndarray) -> np.ndarray:
        """`infer` on an input already prepared (`prepare_input`, or a `window_quantizer`)."""
        interp = self._interp
        try:
            interp.set_tensor(self._in_idx, model_input)
            interp.invoke()
            raw = interp.get_tensor(self._out_idx)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{self.source}: the TFLite runtime cannot run this model: {error_line(exc)}") from None
        return scores_to_uint8(raw.reshape(-1), self.output.dtype)


def scores_to_uint8(raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """int8 q -> q + 128; uint8 as is; float p -> uint8(p * 255) (MLTK classify_audio)."""
    if dtype == np.int8:
        return np.bitwise_xor(np.asarray(raw, dtype=np.int8).view(np.uint8), 0x80)   # q + 128, wrapped
    if dtype == np.uint8:
        return raw.astype(np.uint8)
    return np.clip(raw.astype(np.float32) * 255.0, 0, 255).astype(np.uint8)


def _tensor_info(d: dict[str, Any]) -> TensorInfo:
    q = d.get("quantization", (0.0, 0))
    return TensorInfo(shape=tuple(int(x) for x in d["shape"]), dtype=np.dtype(d["dtype"]),
                      scale=float(q[0]), zero_point=int(q[1]))
