"""Detection settings: the one table of names, types and limits, and the frozen settings.

Names are MLTK's RecognizeCommands parameter names, the same in a model's SL_PARAMSv1, the
agent's `[detection]` config table, the `set_detection` command, manifests and calibration
output. Every value is checked against `LIMITS` wherever it enters (CLI, config, remote
command, model parameters, calibration): a value outside its range is a `ConfigError` of one
line naming the field, the value and the range.

The CLI spells a setting as its `flag` (`--window-ms`); the config file accepts that
spelling with underscores too (`window_ms`), mapped here and nowhere else.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple, Type

from .errors import ConfigError, KeywireError, ParamsError

log = logging.getLogger("keywire.detection")

MAX_AVERAGED_RESULTS = 50   # the detector keeps at most this many results in its window
MAX_CLASSES = 256


@dataclass(frozen=True)
class Limit:
    """Type and closed range of one detection setting."""

    name: str
    kind: type                # int or float (each element of a list setting)
    low: float
    high: float
    flag: str                 # CLI option without dashes' prefix: --<flag>
    meaning: str
    is_list: bool = False

    @property
    def help(self) -> str:
        """One line for a CLI option's help: meaning, range, MLTK name."""
        return f"{self.meaning}; {self.low:g}..{self.high:g} ({self.name})"

    @property
    def range_text(self) -> str:
        text = f"{self.low:g}..{self.high:g}"
        return f"a list of 1..{MAX_CLASSES} values {text}" if self.is_list else text

    def check(self, value: Any, error: Type[KeywireError] = ConfigError, where: str = "") -> Any:
        """`value` in this setting's type (tuple for lists), or `error` naming field, value, range."""
        if self.is_list:
            if isinstance(value, str):
                items = value.split(",") if value.strip() else []
                if any(not v.strip() for v in items):  # "1,,2" or "1,2,": a value left out
                    raise error(f"{where}{self.name} = {_shown(value)} has an empty item; "
                                f"must be {self.range_text}, comma-separated")
                value = items
            if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_CLASSES:
                raise error(f"{where}{self.name} = {_shown(value)} must be {self.range_text}")
            return tuple(self._scalar(v, error, where) for v in value)
        return self._scalar(value, error, where)

    def _scalar(self, value: Any, error: Type[KeywireError], where: str) -> Any:
        try:
            if isinstance(value, bool) or isinstance(value, str) and not value.strip():
                raise TypeError
            if self.kind is int:
                v: Any = operator.index(value) if not isinstance(value, str) else int(value, 10)
            else:
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
        except (TypeError, ValueError, OverflowError):
            kind = "an integer" if self.kind is int else "a number"
            raise error(f"{where}{self.name} = {_shown(value)} must be {kind} in {self.low:g}..{self.high:g}") from None
        if not self.low <= v <= self.high:
            raise error(f"{where}{self.name} = {_shown(value)} is out of range {self.low:g}..{self.high:g}")
        return v


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


LIMITS: dict[str, Limit] = {lim.name: lim for lim in (
    Limit("average_window_duration_ms", int, 10, 60_000, "window-ms", "score averaging window (ms)"),
    Limit("detection_threshold", int, 0, 255, "threshold", "averaged score a keyword must exceed (0-255)"),
    Limit("detection_threshold_list", int, 0, 255, "threshold-list", "per-class thresholds, comma-separated",
          is_list=True),
    Limit("suppression_ms", int, 0, 60_000, "suppression-ms", "time before the same keyword can fire again (ms)"),
    Limit("minimum_count", int, 0, MAX_AVERAGED_RESULTS, "minimum-count",
          f"results needed in the window (0: no averaging; the window keeps at most {MAX_AVERAGED_RESULTS})"),
    Limit("latency_ms", int, 10, 2_000, "latency-ms", "audio between two inferences (ms)"),
    Limit("volume_gain", float, 0.0, 100.0, "volume-gain", "input gain (0: unchanged)"),
)}

# The CLI spelling with underscores, as accepted in the [detection] config table.
ALIASES: dict[str, str] = {lim.flag.replace("-", "_"): lim.name for lim in LIMITS.values()}


def canonical_name(key: str, aliases: bool = True) -> Optional[str]:
    """The MLTK name of a setting given by its MLTK name (or, with `aliases`, its CLI
    spelling); None if unknown."""
    return key if key in LIMITS else ALIASES.get(key) if aliases else None


def check_values(values: Mapping[str, Any], error: Type[KeywireError] = ConfigError,
                 where: str = "", aliases: bool = False) -> dict[str, Any]:
    """Every key known and every value in range; returns them under their MLTK names.
    Messages and model parameters use only the MLTK names; config files also the CLI spelling."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = canonical_name(str(key), aliases)
        if name is None:
            raise error(f"{where}unknown detection setting {str(key)[:40]!r} (known: {', '.join(LIMITS)})")
        out[name] = None if value is None else LIMITS[name].check(value, error, where)
    return out


def _check_fields(settings: Any) -> None:
    """Check (and normalise: lists to tuples) every set field of a frozen settings object."""
    for lim in LIMITS.values():
        value = getattr(settings, lim.name)
        if value is not None:
            object.__setattr__(settings, lim.name, lim.check(value))


@dataclass(frozen=True)
class DetectionSettings:
    """MLTK RecognizeCommands parameters (classify_audio defaults), checked against `LIMITS`."""

    average_window_duration_ms: int = 1000
    detection_threshold: int = 185
    detection_threshold_list: Optional[Tuple[int, ...]] = None
    suppression_ms: int = 1500
    minimum_count: int = 3
    latency_ms: int = 100
    volume_gain: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "DetectionSettings":
        """From a model's parameters (other keys ignored); `ParamsError` when out of range."""
        values = {k: params[k] for k in LIMITS if params.get(k) is not None}
        try:
            return cls(**check_values(values, ParamsError, "model parameter "))
        except ConfigError as exc:  # pragma: no cover - check_values raises ParamsError first
            raise ParamsError(str(exc)) from None

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "average_window_duration_ms": self.average_window_duration_ms,
            "detection_threshold": self.detection_threshold,
            "suppression_ms": self.suppression_ms,
            "minimum_count": self.minimum_count,
            "latency_ms": self.latency_ms,
        }
        if self.detection_threshold_list is not None:
            out["detection_threshold_list"] = list(self.detection_threshold_list)
        if self.volume_gain:
            out["volume_gain"] = self.volume_gain
        return out

    def replace(self, **changes: Any) -> "DetectionSettings":
        """Copy with overrides (None values are ignored), checked against the table."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def threshold_for(self, class_index: int) -> int:
        if self.detection_threshold_list is not None:
            return self.detection_threshold_list[class_index]
        return self.detection_threshold

    def validate(self, n_classes: Optional[int] = None) -> None:
        """A per-class list must have one value per class (`ParamsError` otherwise)."""
        problem = self.class_mismatch(n_classes)
        if problem:
            raise ParamsError(problem)

    def class_mismatch(self, n_classes: Optional[int]) -> str:
        """Why the threshold list does not fit `n_classes` ('' when it does or there is none)."""
        lst = self.detection_threshold_list
        if lst is not None and n_classes is not None and len(lst) != n_classes:
            return f"detection_threshold_list has {len(lst)} values for {n_classes} classes"
        return ""


@dataclass(frozen=True)
class DetectionOverrides:
    """Per-device values on top of the model's own settings (None keeps the model's)."""

    average_window_duration_ms: Optional[int] = None
    detection_threshold: Optional[int] = None
    detection_threshold_list: Optional[Tuple[int, ...]] = None
    suppression_ms: Optional[int] = None
    minimum_count: Optional[int] = None
    latency_ms: Optional[int] = None
    volume_gain: Optional[float] = None

    def __post_init__(self) -> None:
        _check_fields(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], error: Type[KeywireError] = ConfigError,
                     where: str = "", aliases: bool = False) -> "DetectionOverrides":
        """From a `set_detection` command (MLTK names) or a config table (`aliases`: the CLI
        spellings too)."""
        return cls(**check_values(values, error, where, aliases))

    def to_wire(self) -> dict[str, Any]:
        """The set values under their MLTK names (the `set_detection` command's body)."""
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}

    def merged(self, other: "DetectionOverrides") -> "DetectionOverrides":
        """`other`'s set values on top of these."""
        return DetectionOverrides(**{f.name: getattr(other, f.name) if getattr(other, f.name) is not None
                                     else getattr(self, f.name) for f in dataclasses.fields(self)})

    def conflicts(self, n_classes: int) -> list[str]:
        """Overrides that cannot apply to a model with `n_classes` classes (they are dropped)."""
        lst = self.detection_threshold_list
        if lst is not None and len(lst) != n_classes:
            return [f"detection_threshold_list override has {len(lst)} values for {n_classes} classes"]
        return []

    def apply(self, base: DetectionSettings, n_classes: Optional[int] = None) -> DetectionSettings:
        """`base` with these overrides. With `n_classes`, an override list of the wrong length
        is dropped (the model's own list, or the override threshold, is used) so a model swap
        can never be refused for a setting meant for another model."""
        changes: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                   if f.name not in ("detection_threshold", "detection_threshold_list")}
        if self.detection_threshold is not None:
            # A single threshold given by the user replaces a per-class list.
            base = dataclasses.replace(base, detection_threshold=self.detection_threshold,
                                       detection_threshold_list=None)
        lst = self.detection_threshold_list
        if lst is not None and (n_classes is None or len(lst) == n_classes):
            changes["detection_threshold_list"] = lst
        return base.replace(**changes)

    def resolve(self, base: DetectionSettings, n_classes: int) -> tuple[DetectionSettings, list[str]]:
        """The settings for a model with `n_classes` classes and the overrides dropped for it,
        each logged as one warning line."""
        dropped = self.conflicts(n_classes)
        for reason in dropped:
            log.warning("%s: using the model's own thresholds", reason)
        return self.apply(base, n_classes), dropped
