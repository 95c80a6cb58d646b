"""Fixtures for the service tests: a small real keyword model whose "speech" score follows
the loudness of its input, so thresholds have a predictable effect on real speech."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Frontend of the model: 500 ms windows of 16 filterbank channels (48 frames).
FE = {"sample_rate_hz": 16000, "sample_length_ms": 500, "window_size_ms": 25, "window_step_ms": 10,
      "filterbank_n_channels": 16}
# p(speech) = sigmoid(GAIN * (mean feature - LOUDNESS)): ~0 in quiet gaps, ~1 inside words.
LOUDNESS = 540.0
GAIN = 0.1

_BUILD = r"""
import sys, numpy as np, tensorflow as tf
frames, channels, gain, loudness = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
n = frames * channels
inp = tf.keras.Input((frames, channels, 1))
x = tf.keras.layers.Flatten()(inp)
dense = tf.keras.layers.Dense(2, activation="softmax")
out = dense(x)
w = np.zeros((n, 2), np.float32)
w[:, 1] = gain / n
dense.set_weights([w, np.array([0.0, -gain * loudness], np.float32)])
m = tf.keras.Model(inp, out)
open(sys.argv[1], "wb").write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""


@pytest.fixture(scope="session")
def loudness_model(cache_dir: Path) -> Path:
    """A real .tflite with SL_PARAMSv1: classes (_quiet_, speech), float input, softmax output."""
    from keywire.protocol.sl_params import write_params
    from keywire.protocol.detection import DetectionSettings
    from keywire.protocol.frontend_settings import FrontendSettings

    out = cache_dir / "service" / f"loudness_{LOUDNESS:g}_{GAIN:g}.tflite"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fe = FrontendSettings(**FE)
    raw = out.with_suffix(".raw.tflite")
    # TensorFlow runs in its own process: it must not share the test process with the agent's runtime.
    subprocess.run([sys.executable, "-c", _BUILD, str(raw), str(fe.n_frames), str(fe.n_channels),
                    str(GAIN), str(LOUDNESS)], check=True, capture_output=True, timeout=300)
    detection = DetectionSettings(average_window_duration_ms=300, detection_threshold=180,
                                  suppression_ms=500, minimum_count=2, latency_ms=100)
    params = {"name": "loudness", "version": "1", "classes": ["_quiet_", "speech"],
              **fe.to_params(), **detection.to_params()}
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(write_params(raw.read_bytes(), params))
    raw.unlink()
    tmp.rename(out)
    return out
