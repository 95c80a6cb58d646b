"""Every zoo model builds for a given input shape and class count (in a subprocess: Keras)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from keywire.protocol.errors import ConfigError
from keywire.training.zoo import ZOO, resolve

from .conftest import run_python

CODE = r"""
import json, sys
from keywire.training import zoo
out = {}
for shape in [(49, 40, 1), (98, 32, 1), (16, 96), (8, 96)]:
    for name, entry in zoo.ZOO.items():
        if (entry.family == "speech_embedding") != (len(shape) == 2):
            continue
        m, binary = zoo.build(name, shape, 5)
        out[f"{name}{shape}"] = [list(m.input_shape[1:]), m.output_shape[-1], binary, m.count_params()]
m, binary = zoo.build(sys.argv[1] if len(sys.argv) > 1 else "", (49, 40, 1), 3)
out["custom"] = [list(m.input_shape[1:]), m.output_shape[-1], binary, m.count_params()]
m, _ = zoo.build("on_off_cnn", (49, 40, 1), 3, {"filters": [4, 4, 4]})
out["options"] = m.count_params()
print("RESULT" + json.dumps(out))
"""

BUILDER = '''
import keras
def build(input_shape, n_classes):
    inp = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inp)
    return keras.Model(inp, keras.layers.Dense(n_classes, activation="softmax")(x))
'''


def test_each_zoo_model_builds_for_the_shape(tmp_path: Path) -> None:
    builder = tmp_path / "my_model.py"
    builder.write_text(BUILDER)
    r = run_python(CODE.replace('sys.argv[1] if len(sys.argv) > 1 else ""', repr(str(builder))))
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    for shape in ([49, 40, 1], [98, 32, 1], [16, 96], [8, 96]):
        for name, entry in ZOO.items():
            if (entry.family == "speech_embedding") != (len(shape) == 2):
                continue  # spectrogram models read [frames, channels, 1], heads [N, 96]
            in_shape, units, binary, params = out[f"{name}{tuple(shape)}"]
            assert in_shape == shape
            assert units == (1 if entry.binary else 5) and binary == entry.binary
            assert params > 100
    assert out["custom"] == [[49, 40, 1], 3, False, 49 * 40 * 3 + 3]
    assert out["options"] < out["on_off_cnn(49, 40, 1)"][3]


def test_unknown_model_names_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model 'ds-cnn'.*did you mean 'ds_cnn'"):
        resolve("ds-cnn")
    with pytest.raises(ConfigError, match="not found"):
        resolve(str(tmp_path / "missing.py"))
    (tmp_path / "nobuild.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="no function build"):
        resolve(str(tmp_path / "nobuild.py"))


STEP_CODE = r"""
import json
import numpy as np
from keywire.training import zoo
from keywire.training.streaming_head import run_steps, step_model
rng = np.random.default_rng(0)
out = {}
for name, shape, options in [("embedding_conv", (16, 96), {}), ("embedding_conv", (24, 96), {"kernel": 5}),
                             ("embedding_conv", (12, 96), {"layers_": 3}), ("embedding_conv", (9, 96), {"kernel": 5}),
                             ("embedding_dense", (16, 96), {})]:
    m, _ = zoo.build(name, shape, 4, options)
    step = step_model(m, shape[0])
    key = f"{name}{shape}{sorted(options.items())}"
    if step is None:
        out[key] = None
        continue
    x = rng.normal(0, 5, (8,) + shape).astype(np.float32)
    stepped, last = run_steps(step, x)
    out[key] = [float(np.max(np.abs(np.asarray(m(x, training=False)) - stepped))), int(step.inputs[0].shape[1]),
                int(step.inputs[1].shape[1]), len(last)]
print("RESULT" + json.dumps(out))
"""


def test_conv_heads_have_a_step_form_that_reproduces_them() -> None:
    """`embedding_conv` heads of any kernel and depth get a step model whose scores after
    N-k+1 steps equal the whole head's; a head with too few pooled positions or a dense head
    gets none."""
    out = json.loads(run_python(STEP_CODE).stdout.split("RESULT", 1)[1])
    gap, k, state, n = out["embedding_conv(16, 96)[]"]
    assert gap < 1e-4 and k == 3 and state == 2 * 64 + 11 * 64 and n == 8
    gap, k, state, _ = out["embedding_conv(24, 96)[('kernel', 5)]"]
    assert gap < 1e-4 and k == 5 and state == 4 * 64 + 15 * 64
    gap, k, state, _ = out["embedding_conv(12, 96)[('layers_', 3)]"]
    assert gap < 1e-4 and state == 2 * 64 + 2 * 64 + 5 * 64
    assert out["embedding_conv(9, 96)[('kernel', 5)]"] is None     # 9 - 2 x 4 = 1 position pooled
    assert out["embedding_dense(16, 96)[]"] is None
