"""Models and sample audio shipped inside the package (no TensorFlow needed to find them).

Each bundled model lives in `training/models/<name>/` with `<name>.tflite` (int8, with
SL_PARAMSv1), its recipe and its reports; it is rebuilt by `keywire train` from the recipe.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keywire.agent.errors import ConfigError

MODELS_DIR = Path(__file__).parent / "models"
SAMPLES_DIR = Path(__file__).parent / "samples"


@dataclass(frozen=True)
class BundledModel:
    name: str
    path: Path
    size: int
    classes: tuple[str, ...]


def bundled_models() -> list[BundledModel]:
    from keywire.agent.params import read_params

    out = []
    for d in sorted(p for p in MODELS_DIR.glob("*") if p.is_dir()):
        f = d / f"{d.name}.tflite"
        if f.is_file():
            data = f.read_bytes()
            out.append(BundledModel(d.name, f, len(data), tuple(read_params(data).get("classes", ()))))
    return out


def model_path(name: str) -> Path:
    """Path of a bundled model's int8 .tflite; `ConfigError` naming the known models."""
    f = MODELS_DIR / name / f"{name}.tflite"
    if not f.is_file():
        known = ", ".join(m.name for m in bundled_models()) or "none"
        raise ConfigError(f"unknown bundled model {name!r} (bundled: {known})")
    return f


def sample_path(name: str = "sample") -> Path:
    """A bundled sample WAV (16 kHz speech made by the project with espeak-ng)."""
    f = SAMPLES_DIR / f"{name}.wav"
    if not f.is_file():
        raise ConfigError(f"no bundled sample {name!r} in {SAMPLES_DIR}")
    return f
