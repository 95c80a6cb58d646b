"""`keywire transfer`: train new keywords starting from a base model's weights.

The base can be a keywire model directory, a `.keras` file, an MLTK `.mltk.zip` archive or a
Keras-2 `.h5` (MLTK's `keyword_spotting_mobilenetv2`). Its classification head (the last
Dense layer) is replaced for the new classes; the layers before it can be frozen. The base's
frontend settings (from the .tflite beside it) become the new model's, so its features match.
"""
from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from keywire.protocol.errors import ConfigError, ModelError
from keywire.protocol.sl_params import read_params
from keywire.protocol.frontend_settings import FrontendSettings



@dataclass
class Base:
    """A loaded base model and the parameters of its .tflite (empty when none was found)."""

    model: Any
    params: dict
    source: str

    @property
    def frontend(self) -> Optional[FrontendSettings]:
        if not any(k.startswith("fe.") for k in self.params):
            return None
        return FrontendSettings.from_params(self.params)


def _keras2_objects() -> dict[str, Any]:
    """Keras 3 cannot read Keras 2's DepthwiseConv2D `groups` argument: drop it."""
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        def __init__(self, *args: Any, groups: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def _load_keras(path: Path) -> Any:
    """Load a .keras/.h5 model; Keras-2 layers are rebuilt as standard Keras 3 layers so the
    trained model saves and loads without custom objects."""
    import keras

    objects = _keras2_objects()
    try:
        model = keras.models.load_model(path, custom_objects=objects, compile=False)
    except Exception as exc:  # Keras raises many types for unreadable files
        raise ModelError(f"base model {path} cannot be loaded: {str(exc).splitlines()[0]}") from exc
    patched = tuple(objects.values())
    if not any(isinstance(layer, patched) for layer in model.layers):
        return model

    def standard(layer: Any) -> Any:
        if isinstance(layer, patched):
            return keras.layers.DepthwiseConv2D.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=standard)
    clone.set_weights(model.get_weights())
    return clone


def load_base(path: Path | str) -> Base:
    """Load a base model from any of the supported forms; `ModelError`/`ConfigError` otherwise."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"base model {p} not found")
    if p.is_dir():
        kf = sorted(p.glob("*.keras"))
        if not kf:
            raise ConfigError(f"base model folder {p} holds no .keras model")
        tfl = sorted(q for q in p.glob("*.tflite") if not q.name.endswith(".float.tflite"))
        params = read_params(tfl[0].read_bytes()) if tfl else {}
        return Base(_load_keras(kf[0]), params, str(kf[0]))
    if p.suffix in (".keras", ".h5"):
        tfl = p.with_suffix(".tflite")
        params = read_params(tfl.read_bytes()) if tfl.exists() else {}
        return Base(_load_keras(p), params, str(p))
    if p.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
                h5 = [n for n in names if n.endswith((".h5", ".keras"))]
                if not h5:
                    raise ConfigError(f"base archive {p} holds no .h5/.keras model")
                tfl = [n for n in names if n.endswith(".tflite")]
                params = read_params(z.read(tfl[0])) if tfl else {}
                with tempfile.TemporaryDirectory() as d:
                    model = _load_keras(Path(z.extract(h5[0], d)))
        except zipfile.BadZipFile as exc:
            raise ModelError(f"base archive {p} is not a readable zip") from exc
        return Base(model, params, f"{p}:{h5[0]}")
    raise ConfigError(f"base model {p}: expected a model folder, .keras, .h5 or .mltk.zip")


def peek_base(path: Path | str) -> tuple[dict, Optional[tuple[int, ...]]]:
    """The base's SL_PARAMSv1 parameters and input shape (batch dropped) from the .tflite that
    comes with it, without TensorFlow (so a misfit is reported before anything heavy runs);
    ({}, None) when the base has no .tflite."""
    from keywire.agent.interpreter import load_interpreter

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"base model {p} not found")
    data: Optional[bytes] = None
    if p.is_dir():
        tfl = sorted(q for q in p.glob("*.tflite") if not q.name.endswith(".float.tflite"))
        data = tfl[0].read_bytes() if tfl else None
    elif p.suffix in (".keras", ".h5") and p.with_suffix(".tflite").exists():
        data = p.with_suffix(".tflite").read_bytes()
    elif p.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.endswith(".tflite")]
                data = z.read(names[0]) if names else None
        except zipfile.BadZipFile as exc:
            raise ModelError(f"base archive {p} is not a readable zip") from exc
    if data is None:
        return {}, None
    shape = tuple(int(d) for d in load_interpreter(data).get_input_details()[0]["shape"][1:])
    return read_params(data), shape


def check_shape(shape: tuple[int, ...], fe: FrontendSettings, source: str) -> None:
    """`ConfigError` when a base input shape does not fit the frontend's features."""
    if fe.frontend_type == "speech_embedding":  # a head: [N embeddings, 96]
        if len(shape) != 2 or shape[1] != 96:
            raise ConfigError(f"base model {source} takes input {list(shape)} but a speech_embedding head "
                              "reads [N, 96] embeddings")
        return
    n = 1
    for d in shape:
        n *= d
    if n != fe.n_frames * fe.n_channels or fe.n_frames not in shape:
        raise ConfigError(
            f"base model {source} takes input {list(shape)} but the frontend gives "
            f"{fe.n_frames} frames x {fe.n_channels} channels (fe.sample_length_ms={fe.sample_length_ms}, "
            f"fe.window_step_ms={fe.window_step_ms}, fe.filterbank_n_channels={fe.filterbank_n_channels}); "
            "use the base's frontend settings")


def check_fit(base: Base, fe: FrontendSettings) -> tuple[int, ...]:
    """The base's input shape; `ConfigError` when it does not fit the frontend's features."""
    shape = tuple(int(d) for d in base.model.input_shape[1:])
    check_shape(shape, fe, base.source)
    return shape


def embedding(model: Any, name: str = "base") -> Any:
    """The base up to its classification head (the input of its last Dense layer), as a model.
    For an ensemble (members averaged, no head of its own) the members' embeddings side by
    side, so the new head learns from every architecture the base holds."""
    import keras
    from keras import layers

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Dense):
            return keras.Model(model.input, layer.input, name=name)
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not members:
        raise ConfigError(f"base model {model.name} has no Dense classification head to replace")
    inp = keras.Input(shape=tuple(model.input_shape[1:]), name="base_features")
    parts = []
    for m in members:
        e = embedding(m, name=f"{m.name}_body")(inp)
        parts.append(layers.Flatten()(e) if len(e.shape) > 2 else e)
    return keras.Model(inp, layers.Concatenate(name="members")(parts), name=name)


def factory(base: Base, freeze: str = "none", dropout: float = 0.2):
    """A ModelFactory for `train`: base body (reshaped input if needed) + a new softmax head.

    `freeze`: "none", "all" (every base layer) or N (the first N layers)."""
    import keras
    from keras import layers

    if freeze not in ("none", "all") and not freeze.isdigit():
        raise ConfigError(f"--freeze must be none, all or a number of layers, got {freeze!r}")

    def make(input_shape: tuple, n_classes: int) -> Any:
        body = embedding(base.model)
        if freeze == "all":
            body.trainable = False
        elif freeze.isdigit():
            for layer in body.layers[:int(freeze)]:
                layer.trainable = False
        inp = keras.Input(shape=input_shape, name="features")
        x = inp
        base_shape = tuple(int(d) for d in base.model.input_shape[1:])
        if base_shape != tuple(input_shape):
            x = layers.Reshape(base_shape)(x)
        x = body(x, training=False if freeze == "all" else None)
        if len(x.shape) > 2:
            x = layers.Flatten()(x)
        x = layers.Dropout(dropout, name="new_head_dropout")(x)
        out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
        return keras.Model(inp, out, name="transfer")

    return make


def base_frontend(params: dict) -> Optional[FrontendSettings]:
    """The frontend a base model was trained with, from its parameters (None when unknown)."""
    if not any(k.startswith("fe.") for k in params):
        return None
    return FrontendSettings.from_params(params)
