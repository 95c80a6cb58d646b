"""The interpreter choice: the builtin kernels without XNNPACK (the fallback for a model
XNNPACK cannot prepare) run a real bundled model and agree with the default kernels."""
from __future__ import annotations

import numpy as np

from keywire.agent.interpreter import load_interpreter
from keywire.training.bundled import model_path


def _scores(interp, x: np.ndarray) -> np.ndarray:
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], x.astype(d["dtype"]).reshape(d["shape"]))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).astype(int).reshape(-1)


def test_builtin_kernels_without_xnnpack_run_a_real_model() -> None:
    data = model_path("on_off").read_bytes()
    default, builtin = load_interpreter(data), load_interpreter(data, default_delegates=False)
    shape = default.get_input_details()[0]["shape"]
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.integers(-128, 128, size=shape)
        a, b = _scores(default, x), _scores(builtin, x)
        assert a.shape == b.shape and np.max(np.abs(a - b)) <= 5  # int8 kernels may round differently
