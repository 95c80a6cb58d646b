"""The model zoo: each entry builds a Keras model from (input shape, number of classes).

Inputs are [frames, channels, 1] float tensors holding the int8 values the device feeds
(-128..127); every model starts by rescaling them to about -1..1. A user can name a Python
file instead (`path/to/file.py` with `build(input_shape, n_classes)`, or `file.py:function`),
like Edge Impulse's expert mode or an MLTK model spec.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from keywire.protocol.errors import ConfigError

Builder = Callable[[Sequence[int], int], Any]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Builder
    description: str
    binary: bool = False  # one sigmoid output (single keyword), else softmax over classes
    family: str = "microfrontend"  # feature family of its input (spectrogram or speech_embedding)


def _layers():
    import keras
    from keras import layers

    return keras, layers


def _stem(input_shape: Sequence[int], name: str):
    keras, layers = _layers()
    inp = keras.Input(shape=tuple(input_shape), name="features")
    return inp, layers.Rescaling(1.0 / 128.0, name="rescale")(inp)


def _conv_bn(x, filters, kernel, strides=1, name=""):
    _, layers = _layers()
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name + "conv")(x)
    x = layers.BatchNormalization(name=name + "bn")(x)
    return layers.ReLU(name=name + "relu")(x)


def on_off_cnn(input_shape: Sequence[int], n_classes: int, filters: Sequence[int] = (8, 16, 24),
               dropout: float = 0.2):
    """MLTK's on/off CNN shape: 3 strided Conv2D + BN + ReLU, max-pool, dense (tiny, MCU-sized)."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "on_off_cnn")
    for i, f in enumerate(filters):
        x = _conv_bn(x, f, 3, strides=2, name=f"b{i}_")
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="on_off_cnn")


def ds_cnn(input_shape: Sequence[int], n_classes: int, filters: int = 64, blocks: int = 4,
           dropout: float = 0.2):
    """DS-CNN (Zhang et al., "Hello Edge"): a strided conv then depthwise-separable blocks."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "ds_cnn")
    x = _conv_bn(x, filters, (10, 4), strides=(2, 2), name="c0_")
    for i in range(blocks):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = _conv_bn(x, filters, 1, name=f"pw{i}_")
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="ds_cnn")


def tc_resnet(input_shape: Sequence[int], n_classes: int, width: float = 1.5,
              channels: Sequence[int] = (24, 32, 48), dropout: float = 0.2):
    """TC-ResNet8 (Choi et al. 2019): 1-D temporal convolutions with the frequency channels as
    the conv depth, three residual blocks with stride 2."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "tc_resnet")
    frames, ch = int(input_shape[0]), int(input_shape[1])
    x = layers.Reshape((frames, 1, ch))(x)
    x = layers.Conv2D(int(16 * width), (3, 1), padding="same", use_bias=False, name="c0")(x)
    for i, c in enumerate(channels):
        c = int(c * width)
        y = _conv_bn(x, c, (9, 1), strides=(2, 1), name=f"r{i}a_")
        y = layers.Conv2D(c, (9, 1), padding="same", use_bias=False, name=f"r{i}b_conv")(y)
        y = layers.BatchNormalization(name=f"r{i}b_bn")(y)
        s = _conv_bn(x, c, 1, strides=(2, 1), name=f"r{i}s_")
        x = layers.ReLU(name=f"r{i}_relu")(layers.Add(name=f"r{i}_add")([y, s]))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="tc_resnet")


def _bc_block(x, out_ch: int, freq_stride: int, dilation: int, dropout: float, name: str):
    """A broadcasted residual block: a frequency-wise depthwise conv (the 2-D part), averaged
    over frequency into a 1-D temporal depthwise conv (the cheap part), broadcast back and added.
    The first block of a stage (new width or frequency stride) is a transition without identity."""
    _, layers = _layers()
    transition = int(x.shape[-1]) != out_ch or freq_stride != 1
    if transition:  # the frequency stride goes here: TF's CPU depthwise conv wants equal strides
        x = _conv_bn(x, out_ch, 1, strides=(1, freq_stride), name=name + "tr_")
    f2 = layers.DepthwiseConv2D((1, 3), padding="same", use_bias=False, name=name + "fdw")(x)
    f2 = layers.BatchNormalization(name=name + "fdw_bn")(f2)
    y = layers.AveragePooling2D(pool_size=(1, int(f2.shape[2])), name=name + "fmean")(f2)
    y = layers.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False,
                               name=name + "tdw")(y)
    y = layers.BatchNormalization(name=name + "tdw_bn")(y)
    y = layers.ReLU(name=name + "tdw_relu")(y)
    y = layers.Conv2D(out_ch, 1, use_bias=False, name=name + "pw")(y)
    y = layers.Dropout(dropout, name=name + "drop")(y)
    parts = [f2, y] if transition else [x, f2, y]  # y [time, 1, ch] broadcasts over frequency
    return layers.ReLU(name=name + "relu")(layers.Add(name=name + "add")(parts))


def bc_resnet(input_shape: Sequence[int], n_classes: int, width: float = 2.0, dropout: float = 0.1,
              time_stride: int = 1):
    """BC-ResNet (Kim et al. 2021, broadcasted residual learning): 2-D convolutions over
    frequency with 1-D temporal ones on their frequency average, so it keeps the frequency
    locality (pitch and formant shifts between speakers) at about the cost of a 1-D net.
    `time_stride` 2 halves the frame rate after the stem (half the compute)."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "bc_resnet")

    def c(n: int) -> int:
        return max(4, int(round(n * width)))

    x = _conv_bn(x, c(16), 5, strides=(time_stride, 2), name="stem_")
    for si, (ch, blocks, stride, dilation) in enumerate([(8, 2, 1, 1), (12, 2, 2, 2), (16, 4, 2, 4), (20, 4, 1, 8)]):
        for bi in range(blocks):
            x = _bc_block(x, c(ch), stride if bi == 0 else 1, dilation, dropout, name=f"s{si}b{bi}_")
    x = layers.ZeroPadding2D(((2, 2), (0, 0)), name="head_pad")(x)
    x = layers.DepthwiseConv2D((5, int(x.shape[2])), use_bias=False, name="head_dw")(x)
    x = _conv_bn(x, c(32), 1, name="head_")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="bc_resnet")


def mobilenetv2(input_shape: Sequence[int], n_classes: int, alpha: float = 0.5,
                dropout: float = 0.2):
    """A MobileNetV2-style net (inverted residuals, linear bottlenecks): the transfer base."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "mobilenetv2")

    def c(n: int) -> int:
        return max(8, int(n * alpha + 4) // 8 * 8)

    x = _conv_bn(x, c(32), 3, strides=2, name="stem_")
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1)]
    k = 0
    for t, ch, n, s in cfg:
        for j in range(n):
            stride = s if j == 0 else 1
            in_ch = x.shape[-1]
            y = x
            if t != 1:
                y = _conv_bn(y, in_ch * t, 1, name=f"ir{k}_exp_")
            y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"ir{k}_dw")(y)
            y = layers.BatchNormalization(name=f"ir{k}_dw_bn")(y)
            y = layers.ReLU(name=f"ir{k}_dw_relu")(y)
            y = layers.Conv2D(c(ch), 1, use_bias=False, name=f"ir{k}_proj")(y)
            y = layers.BatchNormalization(name=f"ir{k}_proj_bn")(y)
            if stride == 1 and in_ch == c(ch):
                y = layers.Add(name=f"ir{k}_add")([x, y])
            x = y
            k += 1
    x = _conv_bn(x, c(256), 1, name="head_")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="mobilenetv2")


def dnn(input_shape: Sequence[int], n_classes: int, units: int = 144, depth: int = 3, dropout: float = 0.2):
    """Plain feed-forward baseline (Hello Edge's DNN): flatten and dense layers."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "dnn")
    x = layers.Flatten()(x)
    for i in range(depth):
        x = layers.Dense(units, name=f"fc{i}")(x)
        x = layers.BatchNormalization(name=f"fc{i}_bn")(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="dnn")


def binary_cnn(input_shape: Sequence[int], n_classes: int = 1, filters: Sequence[int] = (8, 16, 24)):
    """Single-keyword detector (TFLite speech tutorial style): small CNN, one sigmoid output."""
    keras, layers = _layers()
    inp, x = _stem(input_shape, "binary_cnn")
    for i, f in enumerate(filters):
        x = _conv_bn(x, f, 3, strides=2, name=f"b{i}_")
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1, activation="sigmoid", name="scores")(x)
    return keras.Model(inp, out, name="binary_cnn")


# ---------------------------------------------------------------- speech-embedding heads
# Heads read [N, 96] speech embeddings (float, about -30..30; the int8 export quantizes
# them with a scale learned from the training data). `family = "speech_embedding"`.
def _head_stem(input_shape: Sequence[int], noise: float):
    keras, layers = _layers()
    inp = keras.Input(shape=tuple(input_shape), name="embeddings")
    x = layers.Rescaling(0.1, name="rescale")(inp)
    if noise > 0:
        x = layers.GaussianNoise(noise, name="noise")(x)
    return inp, x


def embedding_conv(input_shape: Sequence[int], n_classes: int, filters: int = 64, layers_: int = 2,
                   kernel: int = 3, units: int = 64, dropout: float = 0.3, noise: float = 0.05):
    """Conv head: 1-D convolutions over the embedding sequence, global max pool, dense."""
    keras, layers = _layers()
    inp, x = _head_stem(input_shape, noise)
    x = layers.Dropout(dropout / 2, name="in_drop")(x)
    for i in range(layers_):
        x = layers.Conv1D(filters, kernel, padding="valid", use_bias=False, name=f"c{i}_conv")(x)
        x = layers.BatchNormalization(name=f"c{i}_bn")(x)
        x = layers.ReLU(name=f"c{i}_relu")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    x = layers.Dense(units, activation="relu", name="fc")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="embedding_conv")


def embedding_dense(input_shape: Sequence[int], n_classes: int, units: int = 128, depth: int = 2,
                    dropout: float = 0.3, noise: float = 0.05):
    """Dense head (openWakeWord's shape): flatten the N x 96 window, dense layers."""
    keras, layers = _layers()
    inp, x = _head_stem(input_shape, noise)
    x = layers.Flatten(name="flat")(x)
    for i in range(depth):
        x = layers.Dropout(dropout, name=f"d{i}_drop")(x)
        x = layers.Dense(units, use_bias=False, name=f"d{i}_fc")(x)
        x = layers.BatchNormalization(name=f"d{i}_bn")(x)
        x = layers.ReLU(name=f"d{i}_relu")(x)
    out = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inp, out, name="embedding_dense")


ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry("on_off_cnn", on_off_cnn, "MLTK on/off CNN: 3 strided conv + BN + ReLU, max-pool, dense"),
    ZooEntry("ds_cnn", ds_cnn, "DS-CNN (Hello Edge): depthwise-separable conv blocks"),
    ZooEntry("tc_resnet", tc_resnet, "TC-ResNet8: temporal 1-D conv residual net"),
    ZooEntry("bc_resnet", bc_resnet, "BC-ResNet: frequency-wise 2-D conv with broadcast temporal 1-D conv"),
    ZooEntry("mobilenetv2", mobilenetv2, "MobileNetV2-style inverted residual net (transfer base)"),
    ZooEntry("dnn", dnn, "plain feed-forward baseline"),
    ZooEntry("binary_cnn", binary_cnn, "single-keyword sigmoid detector", binary=True),
    ZooEntry("embedding_conv", embedding_conv, "speech-embedding head: 1-D conv over N embeddings, max pool",
             family="speech_embedding"),
    ZooEntry("embedding_dense", embedding_dense, "speech-embedding head: dense layers over N x 96",
             family="speech_embedding"),
)}


def resolve(spec: str) -> ZooEntry:
    """A zoo entry by name, or a user builder from `file.py[:function]`; `ConfigError` otherwise."""
    if spec in ZOO:
        return ZOO[spec]
    file, _, fn = spec.partition(":") if ".py" in spec else (spec, "", "")
    if file.endswith(".py"):
        p = Path(file)
        if not p.is_file():
            raise ConfigError(f"recipe field 'model': builder file {p} not found")
        mod_spec = importlib.util.spec_from_file_location(f"keywire_user_model_{p.stem}", p)
        assert mod_spec and mod_spec.loader
        mod = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(mod)
        except Exception as exc:  # user code: report its error as a config problem
            raise ConfigError(f"recipe field 'model': {p} failed to import: {exc}") from exc
        fn = fn or "build"
        builder = getattr(mod, fn, None)
        if not callable(builder):
            raise ConfigError(f"recipe field 'model': {p} has no function {fn}(input_shape, n_classes)")
        return ZooEntry(f"{p.stem}:{fn}", builder, f"user builder {p}", binary=bool(getattr(mod, "BINARY", False)),
                        family=str(getattr(mod, "FAMILY", "microfrontend")))
    import difflib

    close = difflib.get_close_matches(spec, list(ZOO), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"recipe field 'model': unknown model {spec!r}{hint}; choose one of "
                      f"{', '.join(ZOO)} or a path to a .py builder")


def check_family(spec: str, family: str) -> ZooEntry:
    """The zoo entry, if it reads the recipe's feature family; `ConfigError` otherwise (a
    spectrogram model cannot read speech embeddings, nor a head spectrograms)."""
    entry = resolve(spec)
    spectrogram = ("microfrontend", "mfcc")
    if (entry.family in spectrogram) != (family in spectrogram):
        raise ConfigError(f"recipe mixes feature families: model {spec!r} reads {entry.family} features "
                          f"but [frontend] type is {family!r}")
    return entry


def build(spec: str, input_shape: Sequence[int], n_classes: int, options: Mapping[str, Any] | None = None):
    """Build the named model (builder keyword `options` from the recipe's model_options);
    the output layer must match the classes."""
    entry = resolve(spec)
    try:
        model = entry.builder(tuple(int(d) for d in input_shape), 1 if entry.binary else n_classes,
                              **dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"recipe field 'model_options' does not fit model {spec!r}: {exc}") from exc
    units = int(model.output_shape[-1])
    if units != (1 if entry.binary else n_classes) and not (units == 1 and not entry.binary):
        raise ConfigError(f"model {spec!r} has {units} outputs but the recipe has {n_classes} classes")
    return model, (entry.binary or units == 1)
