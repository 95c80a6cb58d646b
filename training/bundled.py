"""Models shipped inside the package (`keywire/training/models/<name>/`), found without TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keywire.protocol.errors import ConfigError
from keywire.protocol.sl_params import read_params

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class BundledModel:
    name: str
    path: Path          # the int8 .tflite
    classes: tuple[str, ...]
    size: int           # bytes of the .tflite
    description: str


def _tflite_of(folder: Path) -> Path | None:
    named = folder / f"{folder.name}.tflite"
    if named.exists():
        return named
    cands = sorted(p for p in folder.glob("*.tflite") if not p.name.endswith(".float.tflite"))
    return cands[0] if cands else None


def list_models() -> list[BundledModel]:
    """Every bundled model with its classes and size, by name."""
    out = []
    if not MODELS_DIR.is_dir():
        return out
    for d in sorted(p for p in MODELS_DIR.iterdir() if p.is_dir()):
        t = _tflite_of(d)
        if t is None:
            continue
        params = read_params(t.read_bytes())
        out.append(BundledModel(d.name, t, tuple(params.get("classes", ())), t.stat().st_size,
                                str(params.get("description", ""))))
    return out


bundled_models = list_models  # the name the first version of this module used


def model_path(name: str) -> Path:
    """Path of a bundled model's .tflite; `ConfigError` naming the known models otherwise."""
    for m in list_models():
        if m.name == name:
            return m.path
    known = ", ".join(m.name for m in list_models()) or "none"
    raise ConfigError(f"no bundled model named {name!r} (bundled: {known})")


SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_path(name: str = "sample") -> Path:
    """A bundled sample WAV (speech12 keywords spoken by espeak-ng, see samples/make_sample.py)."""
    f = SAMPLES_DIR / f"{name}.wav"
    if not f.is_file():
        raise ConfigError(f"no bundled sample {name!r} in {SAMPLES_DIR}")
    return f
