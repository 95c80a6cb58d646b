"""Export a trained Keras model: full-integer int8 .tflite and float .tflite, with SL_PARAMSv1.

The int8 model's input is the device's int8 feature mapping with scale 1, zero point 0 (MLTK
convention: the agent feeds `to_model_input` unchanged); its output is int8 softmax scores
(q + 128 = probability x 256). The float model takes the uint16 frontend values as float32
(the agent's float convention) and maps them to the same int8 values inside the graph.
"""
from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from keywire.protocol.errors import ModelError
from keywire.protocol.sl_params import write_params
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.protocol.detection import DetectionSettings


def model_params(name: str, version: int, classes: Sequence[str], fe: FrontendSettings,
                 detection: DetectionSettings, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """SL_PARAMSv1 dictionary in MLTK's key order."""
    p: dict[str, Any] = {"name": name, "version": int(version), "classes": list(classes),
                         "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    p.update(detection.to_params())
    p.update(fe.to_params())
    if extra:
        p.update(extra)
    return p


def _converter(model: Any):
    """A TFLite converter for a Keras 3 model (its batch dimension becomes 1 on the device)."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def _convert(conv: Any) -> bytes:
    """Convert, keeping Keras' export summary (printed to stdout) out of the user's output."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(conv.convert())


def to_int8_tflite(model: Any, representative: np.ndarray, mfcc: bool = False) -> bytes:
    """Full-integer int8 .tflite; `representative` are float training inputs [n, ...].

    For int8 features two calibration examples span exactly -128..127, so the input gets
    scale 1 and zero point 0 and the agent's int8 features feed it unchanged. With `mfcc`
    (float features: MFCC or speech embeddings) the input scale comes from the data."""
    import tensorflow as tf

    rep = np.asarray(representative, dtype=np.float32)
    if not mfcc:
        lo = np.full((1,) + rep.shape[1:], -128.0, np.float32)
        hi = np.full((1,) + rep.shape[1:], 127.0, np.float32)
        rep = np.concatenate([lo, hi, rep])

    def gen() -> Iterable[list[np.ndarray]]:
        for x in rep:
            yield [x[None]]

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = _convert(conv)
    if not mfcc:
        _check_input_quant(data)
    return data


def _check_input_quant(data: bytes) -> None:
    from keywire.agent.interpreter import load_interpreter

    d = load_interpreter(data).get_input_details()[0]
    scale, zp = d["quantization"]
    if abs(scale - 1.0) > 1e-6 or zp != 0:
        raise ModelError(f"int8 export produced input scale {scale}, zero point {zp}; expected 1, 0")


def u16_to_int8_layer(fe: FrontendSettings):
    """A Keras layer mapping uint16 frontend values (as float) to the int8 model-input values,
    exactly like `to_model_input` (static TFLM mapping or MLTK's dynamic scaling)."""
    import keras
    from keras import ops

    dynamic = fe.quantize_dynamic_scale_enable
    r = int(fe.quantize_dynamic_scale_range_db * 2 ** fe.log_scale_shift * 0.11512925465)

    class U16ToInt8(keras.layers.Layer):
        def call(self, u):
            if dynamic:
                mx = ops.max(u, axis=(1, 2, 3), keepdims=True)
                mn = ops.maximum(mx - r, 0.0)
                q = ops.floor((u - mn) * 255.0 / ops.maximum(mx - mn, 1.0)) - 128.0
            else:
                q = ops.floor((u * 256.0 + 333.0) / 666.0) - 128.0
            return ops.clip(q, -128.0, 127.0)

    return U16ToInt8(name="u16_to_int8")


def to_float_tflite(model: Any, fe: FrontendSettings) -> bytes:
    """Float32 .tflite taking uint16 frontend values as float32 (MFCC: the features as they are)."""
    import keras

    if fe.frontend_type != "microfrontend":  # MFCC and speech embeddings feed floats as they are
        wrapped = model
    else:
        inp = keras.Input(shape=model.input_shape[1:], name="features_u16")
        wrapped = keras.Model(inp, model(u16_to_int8_layer(fe)(inp)), name=model.name + "_float")
    return _convert(_converter(wrapped))


def with_params(tflite: bytes, params: Mapping[str, Any]) -> bytes:
    """The model with its SL_PARAMSv1 entry set."""
    return write_params(tflite, params)
