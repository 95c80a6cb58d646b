"""Frontend settings parsed once from a model's parameters (MLTK `fe.*` keys).

Engines receive this frozen dataclass; they never look at raw dictionaries, argv or the
environment. Names follow MLTK's parameter names so a model's SL_PARAMSv1 maps 1:1.
Detection settings (the other half of a model's parameters) live in `detection.py`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ParamsError


# Integer settings that size buffers and shifts, with ranges every MLTK model keeps well inside:
# a model declaring more is refused before anything is allocated.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "sample_rate_hz": (1000, 192_000),
    "sample_length_ms": (1, 60_000),
    "window_size_ms": (1, 1000),
    "window_step_ms": (1, 1000),
    "filterbank_n_channels": (1, 512),
    "fft_length": (0, 65_536),
    "mfcc_n_coefficients": (1, 512),
    "noise_reduction_smoothing_bits": (0, 30),
    "pcan_gain_bits": (0, 30),
    "log_scale_shift": (0, 30),
}


@dataclass(frozen=True)
class FrontendSettings:
    """MLTK AudioFeatureGenerator settings (`fe.*`), with MLTK's defaults."""

    sample_rate_hz: int = 16000
    sample_length_ms: int = 1000
    window_size_ms: int = 25
    window_step_ms: int = 10
    filterbank_n_channels: int = 32
    filterbank_upper_band_limit: float = 7500.0
    filterbank_lower_band_limit: float = 125.0
    noise_reduction_enable: bool = False
    noise_reduction_smoothing_bits: int = 10
    noise_reduction_even_smoothing: float = 0.025
    noise_reduction_odd_smoothing: float = 0.06
    noise_reduction_min_signal_remaining: float = 0.05
    pcan_enable: bool = False
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    pcan_gain_bits: int = 21
    log_scale_enable: bool = True
    log_scale_shift: int = 6
    dc_notch_filter_enable: bool = False
    dc_notch_filter_coefficient: float = 0.95
    quantize_dynamic_scale_enable: bool = False
    quantize_dynamic_scale_range_db: float = 40.0
    activity_detection_enable: bool = False
    activity_detection_alpha_a: float = 0.5
    activity_detection_alpha_b: float = 0.8
    activity_detection_arm_threshold: float = 0.75
    activity_detection_trip_threshold: float = 0.8
    fft_length: int = 0
    # keywire extension (not an MLTK key): "microfrontend" (MLTK/TFLM), "mfcc" or
    # "speech_embedding" (96-d speech embeddings; the head was trained on the embedding
    # model whose sha256 is `embedding_sha256`).
    frontend_type: str = "microfrontend"
    mfcc_n_coefficients: int = 13
    embedding_sha256: str = ""

    # ---- derived sizes -------------------------------------------------
    @property
    def window_samples(self) -> int:
        return self.sample_rate_hz * self.window_size_ms // 1000

    @property
    def step_samples(self) -> int:
        return self.sample_rate_hz * self.window_step_ms // 1000

    @property
    def sample_length(self) -> int:
        """Samples in one model input clip."""
        return self.sample_rate_hz * self.sample_length_ms // 1000

    @property
    def n_frames(self) -> int:
        """Spectrogram frames in one model input: (L - window) // step + 1."""
        return max(0, (self.sample_length - self.window_samples) // self.step_samples + 1)

    @property
    def n_channels(self) -> int:
        if self.frontend_type == "speech_embedding":
            return 96
        return self.mfcc_n_coefficients if self.frontend_type == "mfcc" else self.filterbank_n_channels

    @property
    def fft_size(self) -> int:
        """FFT length: the explicit fe.fft_length or the next power of two >= window."""
        if self.fft_length:
            return int(self.fft_length)
        return 1 << max(0, math.ceil(math.log2(max(1, self.window_samples))))

    # ---- conversion ----------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "FrontendSettings":
        """Build from a parameter dict with `fe.*` keys; absent keys keep defaults
        (older MLTK models lack dc_notch/quantize/activity keys: disabled)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = "fe." + f.name
            if key in params:
                values[f.name] = _coerce(key, params[key], f.type)
        try:
            s = cls(**values)
        except TypeError as exc:  # pragma: no cover - defensive
            raise ParamsError(f"invalid frontend parameters: {exc}") from exc
        s.validate()
        return s

    def to_params(self) -> dict[str, Any]:
        """`fe.*` keys for SL_PARAMSv1 (keywire-only keys only when not default)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("frontend_type", "mfcc_n_coefficients") and self.frontend_type == "microfrontend":
                continue
            if f.name == "embedding_sha256" and self.frontend_type != "speech_embedding":
                continue
            out["fe." + f.name] = getattr(self, f.name)
        return out

    def validate(self) -> None:
        for name, (low, high) in SIZE_LIMITS.items():  # bounds first: sizes below allocate memory
            value = getattr(self, name)
            if not low <= value <= high:
                raise ParamsError(f"fe.{name} = {value!r} is out of range {low}..{high}")
        if self.sample_rate_hz <= 0:
            raise ParamsError(f"fe.sample_rate_hz must be positive, got {self.sample_rate_hz}")
        if self.window_samples <= 0 or self.step_samples <= 0:
            raise ParamsError("fe.window_size_ms and fe.window_step_ms must give at least one sample")
        if self.filterbank_n_channels <= 0:
            raise ParamsError("fe.filterbank_n_channels must be positive")
        if not (0 <= self.filterbank_lower_band_limit < self.filterbank_upper_band_limit):
            raise ParamsError("fe.filterbank_lower_band_limit must be below fe.filterbank_upper_band_limit")
        if self.filterbank_upper_band_limit > self.sample_rate_hz / 2:
            raise ParamsError("fe.filterbank_upper_band_limit is above the Nyquist frequency")
        if self.fft_size < self.window_samples:
            raise ParamsError(f"fe.fft_length {self.fft_length} is shorter than the window ({self.window_samples})")
        if self.frontend_type not in ("microfrontend", "mfcc", "speech_embedding"):
            raise ParamsError(f"unknown fe.frontend_type {self.frontend_type!r}")
        if self.frontend_type == "speech_embedding":
            if self.sample_rate_hz != 16000:
                raise ParamsError(f"fe.sample_rate_hz must be 16000 for speech embeddings, got {self.sample_rate_hz}")
            if len(self.embedding_sha256) != 64:
                raise ParamsError("fe.embedding_sha256 must name the sha256 of the embedding model "
                                  "the head was trained on")


def _coerce(key: str, value: Any, type_name: Any) -> Any:
    t = str(type_name)
    try:
        if t == "bool":
            return bool(value)
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        if t == "str":
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ParamsError(f"parameter {key} has invalid value {str(value)[:40]!r}") from None
    return value
