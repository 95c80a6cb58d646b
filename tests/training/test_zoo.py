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
