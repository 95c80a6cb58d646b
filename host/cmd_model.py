"""`keywire features` and `keywire summarize`: inspect what a model sees and is."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, List

import numpy as np
import typer

from keywire.protocol.errors import ConfigError


class FeatureDtype(str, Enum):
    uint16 = "uint16"
    int8 = "int8"


def features(
    wavs: Annotated[List[Path], typer.Argument(help="WAV clips (PCM or float, any rate and channel count; read as mono at the model's rate).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model whose fe.* settings define the frontend.")],
    output: Annotated[Path, typer.Option("--out", "-o", "--output", help="Where to write the [N, frames, channels] .npy "
                                                              "(an existing folder: features.npy inside it).")],
    dtype: Annotated[FeatureDtype, typer.Option(help="uint16 frontend output or the int8 model input.")] = FeatureDtype.uint16,
) -> None:
    """Write the model-input features of each clip (trimmed or zero-padded to fe.sample_length_ms)."""
    stacked = compute_clip_features(wavs, model, dtype.value)
    if output.is_dir():
        output = output / "features.npy"
    elif output.suffix != ".npy":
        output = output.with_name(output.name + ".npy")  # the name np.save would give it, said as written
    if output.parent.exists() and not output.parent.is_dir():
        raise ConfigError(f"output path {output}: {output.parent} is not a directory")
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, stacked)
    typer.echo(f"wrote {output} {list(stacked.shape)} {stacked.dtype}", err=True)


def compute_clip_features(wavs: List[Path], model_path: Path, dtype: str) -> np.ndarray:
    """Features of whole clips exactly as MLTK computes them (fresh frontend per clip)."""
    from keywire.agent.audio_io import read_wav
    from keywire.agent.frontend import compute_features, to_model_input
    from keywire.agent.model import KeywordModel

    model = KeywordModel.load(model_path)
    fe = model.frontend
    out = []
    for wav in wavs:
        x = read_wav(wav, fe.sample_rate_hz)
        clip = np.zeros(fe.sample_length, dtype=np.int16)
        clip[: min(len(x), len(clip))] = x[: len(clip)]
        u16 = compute_features(clip, fe)
        out.append(to_model_input(u16, fe) if dtype == "int8" else u16)
    return np.stack(out) if out else np.zeros((0, fe.n_frames, fe.n_channels), dtype=dtype)


def summarize(
    model: Annotated[Path, typer.Argument(help="A .tflite model.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Ops, tensor shapes, MACs, size and embedded parameters of a model (like `mltk summarize`)."""
    from .summary import summarize as summarize_model

    s = summarize_model(model)
    if as_json:
        typer.echo(json.dumps(s.to_dict(), indent=2))
    else:
        from .tables import show_summary

        show_summary(s)


def register(app: typer.Typer) -> None:
    app.command()(features)
    app.command()(summarize)
