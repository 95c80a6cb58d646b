"""Real int8 keyword models for fleet tests and benchmarks, built once with TensorFlow and cached.

The fleet does not care how well a model spots words, only that it is a genuine MLTK-style
model (int8 .tflite + SL_PARAMSv1) of a realistic size; so these are untrained networks of
~250 kB with the default 16 kHz frontend. Variants (new version, wrong frontend, classes
that do not match the outputs) are derived with `merge_params`.
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

_BUILD = r"""
import sys, numpy as np, tensorflow as tf
frames, channels, units, out, n_out = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[1], int(sys.argv[5])
tf.keras.utils.set_random_seed(0)
inp = tf.keras.Input((frames, channels, 1))
x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
x = tf.keras.layers.Flatten()(x)
x = tf.keras.layers.Dense(units, activation="relu")(x)
# The output bias makes "yes" the top class on near-constant input (silence), so tests that run
# it on silence with threshold 0 get a steady stream of detections on every machine.
y = tf.keras.layers.Dense(n_out, activation="softmax", kernel_initializer="zeros",
                          bias_initializer=tf.keras.initializers.Constant([2.0] + [0.0] * (n_out - 1)))(x)
m = tf.keras.Model(inp, y)
rng = np.random.default_rng(0)
def rep():
    for _ in range(8):
        yield [rng.uniform(-1, 1, (1, frames, channels, 1)).astype(np.float32)]
c = tf.lite.TFLiteConverter.from_keras_model(m)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = rep
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = tf.int8
c.inference_output_type = tf.int8
open(out, "wb").write(c.convert())
"""

CLASSES = ["yes", "no", "_unknown_", "_silence_"]


def build_model(path: Path, units: int = 172, name: str = "fleet-test", version: str = "1",
                classes: tuple[str, ...] = tuple(CLASSES)) -> Path:
    """An int8 model for the default MLTK frontend (49 x 32), ~250 kB with the default units, with SL_PARAMSv1."""
    from keywire.protocol.detection import DetectionSettings
    from keywire.protocol.frontend_settings import FrontendSettings
    from keywire.protocol.sl_params import write_params

    fe = FrontendSettings(window_size_ms=30, window_step_ms=20)
    raw = path.with_suffix(".raw.tflite")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path
        subprocess.run([sys.executable, "-c", _BUILD, str(raw), str(fe.n_frames), str(fe.n_channels), str(units),
                        str(len(classes))],
                       check=True, capture_output=True)
        params = {"name": name, "version": version, "classes": list(classes), **fe.to_params(),
                  **DetectionSettings(detection_threshold=200).to_params()}
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(write_params(raw.read_bytes(), params))
        raw.unlink()
        tmp.rename(path)
    return path


def variant(base: Path, out: Path, **updates) -> Path:
    """A copy of `base` with some parameters changed (keys with dots given as fe__x -> fe.x)."""
    from keywire.protocol.sl_params import merge_params

    if not out.exists():
        params = {k.replace("__", "."): v for k, v in updates.items()}
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(merge_params(base.read_bytes(), params))
        tmp.rename(out)
    return out
