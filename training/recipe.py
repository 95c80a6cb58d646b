"""Training recipes: one frozen description of a training run, read from TOML.

A recipe names the data, the keywords, the frontend (`fe.*` settings the agent will use),
the model, the schedule and the augmentation. Every field can be overridden from the command
line with its dotted name (`--epochs 3`, `--augmentation.copies 2`, `--frontend.window_step_ms 20`).
Unknown or mistyped fields are rejected by name before any work starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from keywire.protocol.errors import ConfigError, KeywireError
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.protocol.detection import DetectionSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class AugmentationSettings:
    """MLTK-style augmentation. Waveform augmentations are applied to `copies` cached
    feature copies of each training clip; SpecAugment masks are drawn fresh every batch."""

    copies: int = 4                       # augmented feature copies per training clip (0 = none)
    time_shift_ms: int = 100              # random offset in [-t, +t]
    loudness_db: Tuple[float, float] = (-10.0, 6.0)  # random gain range
    speed: Tuple[float, float] = (0.9, 1.1)  # resampling factor (tempo and pitch)
    pitch_semitones: Tuple[float, float] = (-2.0, 2.0)  # pitch shift, tempo kept
    noise_probability: float = 0.8        # chance to mix a background noise snippet
    noise_dbfs: Tuple[float, float] = (-55.0, -25.0)  # RMS level of the mixed noise
    noise_snr_db: Tuple[float, float] = (0.0, 0.0)  # SNR range below the clip's voiced level
                                          # (replaces noise_dbfs; 0, 0 = off)
    babble_probability: float = 0.0       # chance the background is keyword-free speech
                                          # (recipe 'background_speech') instead of noise
    warmup_ms: int = 0                    # background before the clip, run through the frontend
                                          # so its noise estimate is settled as in a stream
    warmup_random: bool = False           # draw the warm-up per copy from 0..warmup_ms
    stream_probability: float = 0.0       # chance a copy is mixed as in a listening stream
                                          # (`augment.stream_mix`) instead of the above
    stream_snr_db: Tuple[float, float] = (0.0, 20.0)  # its voiced level above the stream's background
    stream_dbfs: Tuple[float, float] = (-44.0, -32.0)  # level range of the background's segments
    time_masks: int = 2                   # SpecAugment masks along time per example
    time_mask_frames: int = 8             # maximum width of a time mask
    freq_masks: int = 2                   # SpecAugment masks along channels per example
    freq_mask_channels: int = 4           # maximum width of a frequency mask
    specaugment_probability: float = 0.8  # chance an example gets masks at all


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs; the same recipe gives the same model."""

    name: str = "model"
    version: int = 1
    description: str = ""
    data: Tuple[str, ...] = ()            # Speech Commands-layout folders
    train_data: Tuple[str, ...] = ()      # more such folders whose clips only ever train (e.g.
                                          # synthetic speech): validation and test stay real
    background_noise: Tuple[str, ...] = ()  # extra noise folders (each dataset's _background_noise_ is used too)
    background_speech: Tuple[str, ...] = ()  # keyword-free speech (WAV files or folders): babble
                                          # for augmentation and `_unknown_` windows
    keywords: Tuple[str, ...] = ()
    unknown_class_percentage: float = 100.0  # 0 = no _unknown_ class
    silence_class_percentage: float = 100.0  # 0 = no _silence_ class
    speech_unknown_percentage: float = 0.0  # extra `_unknown_` windows cut from background_speech
    hard_negative_probability: float = 0.0  # speech_embedding family: train twice; the second
                                          # time, every moment of background_speech where the
                                          # first model gave a keyword at least this
                                          # probability is an `_unknown_` example (0 = off)
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    split_salt: str = ""                  # "" = Speech Commands' own hash split; any other value
                                          # re-draws the speaker split (e.g. for a set that is
                                          # itself one canonical split)
    model: str = "ds_cnn"                 # zoo name, or path/to/file.py[:function]
    model_options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the builder
    epochs: int = 40
    batch_size: int = 64
    epoch_passes: int = 1                 # visits of each training clip per epoch (a random copy each time)
    learning_rate: float = 0.005
    lr_schedule: str = "cosine"           # cosine | step | constant
    warmup_epochs: int = 1
    early_stopping_patience: int = 10     # epochs without val accuracy gain (0 = off)
    class_weights: str = "balanced"       # balanced | none
    class_weight_scale: Mapping[str, float] = field(default_factory=dict)  # per-class factors on
                                          # top of class_weights, e.g. { _unknown_ = 2.0 }: a
                                          # mistaken "other word" costs twice (fewer false accepts)
    label_smoothing: float = 0.05
    weight_decay: float = 1e-4
    ensemble: int = 1                     # members trained with seeds seed, seed+1, ...; the
                                          # exported model averages their scores (N x compute)
    ensemble_models: Tuple[Mapping[str, Any], ...] = ()  # further members of other architectures,
                                          # e.g. [{ model = "bc_resnet", width = 3.0 }] (the rest of
                                          # each table are builder options); seeds continue
    weight_averaging: float = 0.0         # EMA momentum of the weights (Polyak averaging), e.g.
                                          # 0.995; validation, checkpoints and export use the
                                          # averaged weights (0 = off)
    seed: int = 1
    max_clips_per_class: int = 0          # 0 = all (caps very large datasets)
    embedding_frames: int = 16            # speech_embedding family: embeddings a head reads
                                          # (80 ms apart; 16 cover about 2 s of audio)
    frontend: FrontendSettings = field(default_factory=FrontendSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)

    # ------------------------------------------------------------ derived
    @property
    def classes(self) -> Tuple[str, ...]:
        """Model output classes: keywords, then `_unknown_`, then `_silence_` (when enabled)."""
        out = list(self.keywords)
        if self.unknown_class_percentage > 0:
            out.append("_unknown_")
        if self.silence_class_percentage > 0:
            out.append("_silence_")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML-writable: tuples become lists); a speech_embedding recipe writes
        only its family's frontend fields."""
        d = _plain(dataclasses.asdict(self))
        if self.family == EMBEDDING:
            d["frontend"] = {"type": EMBEDDING, **{k: d["frontend"][k] for k in _EMBEDDING_FIELDS[1:]}}
        return d

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)

    @property
    def family(self) -> str:
        """Feature family: "speech_embedding" (heads over speech embeddings) or the
        spectrogram frontends ("microfrontend", "mfcc")."""
        return EMBEDDING if self.frontend.frontend_type == EMBEDDING else "microfrontend"

    def validate(self) -> None:
        """Structural checks that need no data (data-dependent checks live in dataset.py)."""
        if not self.keywords:
            raise ConfigError("recipe field 'keywords' is empty: name at least one keyword")
        if len(set(self.keywords)) != len(self.keywords):
            raise ConfigError(f"recipe field 'keywords' lists a word twice: {list(self.keywords)}")
        for k in self.keywords:
            if not k or k.startswith("_"):
                raise ConfigError(f"recipe field 'keywords': {k!r} is not a keyword name")
        if not self.data:
            raise ConfigError("recipe field 'data' is empty: name at least one dataset folder")
        for name in ("epochs", "batch_size", "epoch_passes", "ensemble"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"recipe field '{name}' must be positive, got {getattr(self, name)}")
        if self.family == EMBEDDING and not 1 <= self.embedding_frames <= 64:
            raise ConfigError(f"recipe field 'embedding_frames' must be within 1..64, got {self.embedding_frames}")
        if self.learning_rate <= 0:
            raise ConfigError(f"recipe field 'learning_rate' must be positive, got {self.learning_rate}")
        if not 0.0 <= self.weight_averaging < 1.0:
            raise ConfigError(f"recipe field 'weight_averaging' must be within 0..1 (exclusive), "
                              f"got {self.weight_averaging}")
        if self.lr_schedule not in ("cosine", "step", "constant"):
            raise ConfigError(f"recipe field 'lr_schedule' must be cosine, step or constant, got {self.lr_schedule!r}")
        if self.class_weights not in ("balanced", "none"):
            raise ConfigError(f"recipe field 'class_weights' must be balanced or none, got {self.class_weights!r}")
        for name, factor in self.class_weight_scale.items():
            if name not in self.classes:
                raise ConfigError(f"recipe field 'class_weight_scale' names {name!r}, which is not a class "
                                  f"of this recipe ({', '.join(self.classes)})")
            if not (isinstance(factor, (int, float)) and 0.01 <= factor <= 100):
                raise ConfigError(f"recipe field 'class_weight_scale.{name}' must be a number within "
                                  f"0.01..100, got {factor!r}")
        for name in ("validation_percentage", "testing_percentage", "unknown_class_percentage",
                     "silence_class_percentage"):
            v = getattr(self, name)
            if v < 0 or (name in ("validation_percentage", "testing_percentage") and v >= 100):
                raise ConfigError(f"recipe field '{name}' is out of range: {v}")
        if self.validation_percentage + self.testing_percentage >= 100:
            raise ConfigError("recipe fields 'validation_percentage' + 'testing_percentage' leave no training data")
        a = self.augmentation
        if a.copies < 0:
            raise ConfigError("recipe field 'augmentation.copies' must be >= 0")
        for name in ("loudness_db", "speed", "pitch_semitones", "noise_dbfs", "noise_snr_db", "stream_snr_db",
                     "stream_dbfs"):
            lo, hi = getattr(a, name)
            if lo > hi:
                raise ConfigError(f"recipe field 'augmentation.{name}' has min > max: {[lo, hi]}")
        if a.speed[0] <= 0:
            raise ConfigError("recipe field 'augmentation.speed' must be positive")
        if a.warmup_ms < 0:
            raise ConfigError("recipe field 'augmentation.warmup_ms' must be >= 0")
        if self.speech_unknown_percentage < 0:
            raise ConfigError(f"recipe field 'speech_unknown_percentage' is out of range: {self.speech_unknown_percentage}")
        if self.speech_unknown_percentage > 0 and not self.background_speech:
            raise ConfigError("recipe field 'speech_unknown_percentage' is above 0 but 'background_speech' is empty")
        if self.speech_unknown_percentage > 0 and self.unknown_class_percentage <= 0:
            raise ConfigError("recipe field 'speech_unknown_percentage' needs an _unknown_ class "
                              "(unknown_class_percentage > 0)")
        p = self.hard_negative_probability
        if p:
            if not 0 < p < 1:
                raise ConfigError(f"recipe field 'hard_negative_probability' must be within 0..1 (0 = off), got {p}")
            if self.family != EMBEDDING:
                raise ConfigError("recipe field 'hard_negative_probability' needs the speech_embedding frontend "
                                  "([frontend] type = \"speech_embedding\")")
            if not self.background_speech:
                raise ConfigError("recipe field 'hard_negative_probability' is above 0 but 'background_speech' "
                                  "(the keyword-free speech it mines) is empty")
            if self.unknown_class_percentage <= 0:
                raise ConfigError("recipe field 'hard_negative_probability' needs an _unknown_ class "
                                  "(unknown_class_percentage > 0)")
        if a.stream_dbfs[1] > 0:
            raise ConfigError(f"recipe field 'augmentation.stream_dbfs' must be at most 0 dBFS, got {list(a.stream_dbfs)}")
        for name in ("noise_probability", "specaugment_probability", "babble_probability", "stream_probability"):
            if not 0 <= getattr(a, name) <= 1:
                raise ConfigError(f"recipe field 'augmentation.{name}' must be within 0..1")
        try:
            self.frontend.validate()
            self.detection.validate(len(self.classes))
        except KeywireError as exc:
            raise ConfigError(f"recipe: {exc}") from exc


EMBEDDING = "speech_embedding"
# [frontend] fields a speech_embedding recipe may set: the embedding fixes everything else
_EMBEDDING_FIELDS = ("frontend_type", "sample_rate_hz", "sample_length_ms", "embedding_sha256")

_SECTIONS = {"frontend": FrontendSettings, "augmentation": AugmentationSettings,
             "detection": DetectionSettings}


def field_names() -> list[str]:
    """Every settable recipe field, dotted for sections (for help texts and CLI parsing)."""
    out = []
    for f in dataclasses.fields(Recipe):
        if f.name in _SECTIONS:
            out += [f"{f.name}.{g.name}" for g in dataclasses.fields(_SECTIONS[f.name])]
        else:
            out.append(f.name)
    return out


def from_dict(values: Mapping[str, Any], base: Optional[Recipe] = None, source: str = "recipe") -> Recipe:
    """Build a recipe from nested values (as TOML gives them) over `base`; typos are errors."""
    base = base or Recipe()
    top: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown field '{key}'{_suggest(key, fields)}")
        if key == "ensemble_models":
            top[key] = _ensemble_models(value, source)
        elif key == "class_weight_scale":
            top[key] = _class_weight_scale(value, source)
        elif key == "model_options":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: field 'model_options' must be a table")
            top[key] = {**base.model_options, **{str(k): _option_value(v) for k, v in value.items()}}
        elif key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: field '{key}' must be a table")
            top[key] = _section(key, value, getattr(base, key), source)
        else:
            top[key] = _convert(key, value, getattr(base, key), source)
    r = dataclasses.replace(base, **top)
    return r


def _ensemble_models(value: Any, source: str) -> Tuple[Mapping[str, Any], ...]:
    """`ensemble_models` from TOML (a list of tables) or the command line (the same, as TOML text)."""
    if isinstance(value, str):
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: field 'ensemble_models' is not a TOML list of tables: {exc}") from exc
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, Mapping) for m in value):
        raise ConfigError(f"{source}: field 'ensemble_models' must be a list of tables like "
                          f"[{{ model = \"bc_resnet\", width = 3.0 }}]")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m.get("model"), str) or not m["model"]:
            raise ConfigError(f"{source}: field 'ensemble_models' entry {i} has no model name")
        out.append({str(k): v for k, v in m.items()})
    return tuple(out)


def _class_weight_scale(value: Any, source: str) -> Mapping[str, float]:
    """`class_weight_scale` from TOML (a table) or the command line (`_unknown_=2,up=1.5`)."""
    if isinstance(value, str):
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        value = {}
        for p in pairs:
            name, sep, factor = p.partition("=")
            if not sep:
                raise ConfigError(f"{source}: field 'class_weight_scale' wants CLASS=FACTOR pairs, got {p!r}")
            value[name.strip()] = factor.strip()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: field 'class_weight_scale' must be a table like {{ _unknown_ = 2.0 }}")
    out = {}
    for name, factor in value.items():
        try:
            f = float(factor)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: field 'class_weight_scale.{name}' is not a number: {factor!r}") from None
        out[str(name)] = f  # the range (which also refuses NaN) is checked in Recipe.validate
    return out


def _option_value(v: Any) -> Any:
    """A model option from TOML (kept) or the command line (a string parsed as a TOML value)."""
    if isinstance(v, str):
        try:
            return tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            return v
    return v


def _section(name: str, values: Mapping[str, Any], current: Any, source: str) -> Any:
    cls = _SECTIONS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in values.items():
        k = key[3:] if name == "frontend" and key.startswith("fe.") else key
        if name == "frontend" and k == "type":
            k = "frontend_type"  # `[frontend] type = "speech_embedding"` chooses the family
        if k not in fields:
            raise ConfigError(f"{source}: unknown field '{name}.{key}'{_suggest(k, fields, name + '.')}")
        changes[k] = _convert(f"{name}.{k}", value, getattr(current, k), source)
    if name == "frontend":
        if changes.get("frontend_type", current.frontend_type) == EMBEDDING:
            mixed = sorted(k for k in changes if k not in _EMBEDDING_FIELDS)
            if mixed:
                raise ConfigError(f"{source} mixes feature families: [frontend] type = "
                                  f"\"{EMBEDDING}\" with spectrogram field 'frontend.{mixed[0]}'")
            current = FrontendSettings()  # spectrogram settings of a base recipe do not apply
            if "embedding_sha256" not in changes:  # the pinned model the agent checks at load
                from keywire.agent.frontend.embedding import EMBEDDING_SHA256

                changes["embedding_sha256"] = EMBEDDING_SHA256
    return dataclasses.replace(current, **changes)


def _convert(key: str, value: Any, current: Any, source: str) -> Any:
    """Coerce a TOML/CLI value to the type of the field's current value."""
    try:
        if key in ("data", "train_data", "background_noise", "background_speech", "keywords"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if key == "detection.detection_threshold_list":
            if value is None or value == "":
                return None
            if isinstance(value, str):
                value = value.split(",")
            return tuple(int(v) for v in value)
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            if isinstance(value, str):
                value = value.split(",")
            items = tuple(float(v) for v in value)
            if len(items) != len(current):
                raise ValueError(f"expected {len(current)} values")
            return items
        if isinstance(current, str):
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: field '{key}' has an invalid value {value!r}") from exc
    return value


def _suggest(key: str, fields: Mapping[str, Any], prefix: str = "") -> str:
    import difflib

    close = difflib.get_close_matches(key, list(fields), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def load_recipe(path: Path | str, overrides: Optional[Mapping[str, Any]] = None) -> Recipe:
    """Read a TOML recipe, apply dotted CLI overrides, validate. Relative data paths are
    resolved against the recipe's folder."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"recipe {p} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {p} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {p} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {p}: {exc.strerror or exc}") from None
    r = from_dict(raw, source=f"recipe {p.name}")
    r = r.replace(data=_resolve(r.data, p.parent), train_data=_resolve(r.train_data, p.parent),
                  background_noise=_resolve(r.background_noise, p.parent),
                  background_speech=_resolve(r.background_speech, p.parent))
    if r.model.endswith(".py") or ".py:" in r.model:
        file, _, fn = r.model.partition(":")
        if not Path(file).is_absolute() and (p.parent / file).exists():
            r = r.replace(model=str(p.parent / file) + (f":{fn}" if fn else ""))
    if overrides:
        r = apply_overrides(r, overrides)
    r.validate()
    return r


def _resolve(paths: Tuple[str, ...], base: Path) -> Tuple[str, ...]:
    out = []
    for s in paths:
        q = Path(s).expanduser()
        out.append(str(q if q.is_absolute() else (base / q).resolve()))
    return tuple(out)


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """Apply {'epochs': '3', 'augmentation.copies': '1'} style overrides (CLI values)."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key.startswith("model_options."):
            nested.setdefault("model_options", {})[key.partition(".")[2]] = value
        elif "." in key:
            section, _, sub = key.partition(".")
            if section not in _SECTIONS:
                raise ConfigError(f"option --{key}: unknown field '{key}'")
            nested.setdefault(section, {})[sub] = value
        else:
            nested[key] = value
    if "model" in nested and nested["model"] != recipe.model:
        recipe = recipe.replace(model_options={})  # the recipe's options belong to its own model
    return from_dict(nested, base=recipe, source="command line")


def parse_cli_overrides(args: list[str]) -> dict[str, Any]:
    """`['--epochs', '3', '--augmentation.copies=1']` -> {'epochs': '3', 'augmentation.copies': '1'}."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise ConfigError(f"unexpected argument {a!r} (recipe fields are given as --field value)")
        name = a[2:]
        if "=" in name:
            name, _, value = name.partition("=")
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"option --{name} needs a value")
            i += 1
            value = args[i]
        name = name.replace("-", "_")
        if name == "frontend.type":
            name = "frontend.frontend_type"
        if name not in field_names() and not name.startswith("model_options."):
            import difflib

            close = difflib.get_close_matches(name, field_names(), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ConfigError(f"unknown recipe field --{name}{hint}")
        out[name] = value
        i += 1
    return out


# ---------------------------------------------------------------- TOML writing
def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps_toml(d: Mapping[str, Any]) -> str:
    """Minimal TOML writer for recipes (scalars, lists, one level of tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
