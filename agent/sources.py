"""Audio providers: microphone (PyAudio), WAV file, raw stdin, silence.

Every source yields mono int16 samples at the model's rate (`read()` returns at most
`max_samples`, an empty array when nothing is ready yet, None at end of stream). Sources
at another rate go through `audio_io.Resampler` (soxr), flushed once at the end; WAV files are
read by `audio_io.WavReader`. A source reports its `state`; the runtime's supervisor reopens
sources that fail.
"""
from __future__ import annotations

import enum
import logging
import sys
import math
import time
from pathlib import Path
from typing import BinaryIO, Optional, Protocol

import numpy as np

from .audio_io import MAX_RATE_HZ, MIN_RATE_HZ, Resampler, WavReader
from keywire.protocol.errors import AudioError, ConfigError

log = logging.getLogger("keywire.sources")


class SourceState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    FAILED = "failed"
    ENDED = "ended"


class AudioSource(Protocol):
    name: str
    sample_rate: int
    state: SourceState
    dropped_samples: int

    def open(self) -> None: ...

    def read(self, max_samples: int) -> Optional[np.ndarray]: ...

    def close(self) -> None: ...


class FileSource:
    """A WAV file (any format `WavReader` reads, any rate, channels mixed down), paced in real
    time or not. A file without samples is an `AudioError`; one cut mid-frame is read up to
    the cut (with a warning)."""

    reopenable = False

    def __init__(self, path: Path, sample_rate: int, realtime: bool = True) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.state = SourceState.CLOSED
        self.dropped_samples = 0
        self._wav: Optional[WavReader] = None
        self._resample: Optional[Resampler] = None
        self._start = 0.0
        self._delivered = 0

    def open(self) -> None:
        wav = WavReader(self.path)
        if wav.format.n_frames == 0:
            wav.close()
            raise AudioError(f"{self.path}: WAV file has no samples")
        self._wav, self._resample = wav, Resampler(wav.format.sample_rate, self.sample_rate)
        self._start = time.monotonic()
        self._delivered = 0
        self.state = SourceState.OPEN

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        assert self._wav is not None and self._resample is not None, "source not open"
        if self.realtime:
            due = self._start + (self._delivered + max_samples) / self.sample_rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        n_in = max(1, int(round(max_samples * self._wav.format.sample_rate / self.sample_rate)))
        x = self._wav.read(n_in)
        if len(x) == 0:
            if self.state is not SourceState.ENDED and self._wav.truncated:
                log.warning("%s ends inside a sample frame; the partial frame is ignored", self.path)
            self.state = SourceState.ENDED
            tail = self._resample.flush()
            if len(tail) == 0:
                return None
            out = tail
        else:
            out = self._resample(x)
        self._delivered += len(out)
        return out

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        if self.state is not SourceState.ENDED:
            self.state = SourceState.CLOSED


class StdinSource:
    """Raw little-endian int16 mono PCM on standard input at `input_rate` Hz."""

    def __init__(self, sample_rate: int, input_rate: Optional[int] = None,
                 stream: Optional[BinaryIO] = None) -> None:
        self.name = "stdin"
        self.sample_rate = sample_rate
        self.input_rate = input_rate or sample_rate
        self.state = SourceState.CLOSED
        self.dropped_samples = 0
        self._stream = stream
        self._odd = b""
        self._resample = Resampler(self.input_rate, sample_rate)

    def open(self) -> None:
        if self._stream is None:
            self._stream = sys.stdin.buffer
        self.state = SourceState.OPEN

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        assert self._stream is not None
        n_in = max(1, int(round(max_samples * self.input_rate / self.sample_rate)))
        raw = self._stream.read1(2 * n_in) if hasattr(self._stream, "read1") else self._stream.read(2 * n_in)
        if not raw:
            self.state = SourceState.ENDED
            tail = self._resample.flush()
            return tail if len(tail) else None
        raw = self._odd + raw
        cut = len(raw) - len(raw) % 2
        self._odd = raw[cut:]
        return self._resample(np.frombuffer(raw[:cut], dtype="<i2").astype(np.int16))

    def close(self) -> None:
        if self.state is not SourceState.ENDED:
            self.state = SourceState.CLOSED


class SilenceSource:
    """Digital silence, paced in real time (for tests and a dry run of a device)."""

    def __init__(self, sample_rate: int, realtime: bool = True, duration_s: Optional[float] = None) -> None:
        self.name = "silence"
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.state = SourceState.CLOSED
        self.dropped_samples = 0
        self._limit = None if duration_s is None else int(duration_s * sample_rate)
        self._delivered = 0
        self._start = 0.0

    def open(self) -> None:
        self._start = time.monotonic()
        self._delivered = 0
        self.state = SourceState.OPEN

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        n = max_samples
        if self._limit is not None:
            n = min(n, self._limit - self._delivered)
            if n <= 0:
                self.state = SourceState.ENDED
                return None
        if self.realtime:
            delay = self._start + (self._delivered + n) / self.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._delivered += n
        return np.zeros(n, dtype=np.int16)

    def close(self) -> None:
        self.state = SourceState.CLOSED


class MicSource:
    """A PortAudio input device through PyAudio (`mic`, `mic:INDEX` or `mic:NAME`)."""

    def __init__(self, device: Optional[str], sample_rate: int, chunk_samples: int = 1600) -> None:
        self.device = device
        self.name = f"mic:{device}" if device else "mic"
        self.sample_rate = sample_rate
        self.chunk_samples = chunk_samples
        self.state = SourceState.CLOSED
        self.dropped_samples = 0
        self._pa = None
        self._stream = None
        self._resample: Optional[Resampler] = None
        self._rate_in = sample_rate

    def _find_device(self, pa) -> Optional[int]:
        if self.device is None or self.device == "":
            return None
        if self.device.isdigit():
            return int(self.device)
        names = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if info.get("maxInputChannels", 0) > 0:
                names.append(info["name"])
                if info["name"] == self.device or self.device in info["name"]:
                    return i
        raise AudioError(f"no audio input device named {self.device!r} (have: {', '.join(names) or 'none'})")

    def open(self) -> None:
        try:
            import pyaudio
        except ImportError as exc:  # pragma: no cover - pyaudio is a dependency
            raise AudioError("the mic source needs PyAudio (pip install pyaudio)") from exc
        from .audio_devices import start_portaudio

        pa = start_portaudio()  # ALSA/JACK diagnostics to the debug log, not ~50 lines per retry
        try:
            index = self._find_device(pa)
            rate = self.sample_rate
            try:
                pa.is_format_supported(rate, input_device=index if index is not None
                                       else pa.get_default_input_device_info()["index"],
                                       input_channels=1, input_format=pyaudio.paInt16)
            except ValueError:
                info = (pa.get_device_info_by_index(index) if index is not None
                        else pa.get_default_input_device_info())
                rate = int(info["defaultSampleRate"])
            self._rate_in = rate
            frames = max(1, int(self.chunk_samples * rate / self.sample_rate))
            self._stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, input=True,
                                   input_device_index=index, frames_per_buffer=frames)
        except AudioError:
            pa.terminate()
            raise
        except (OSError, IOError, ValueError) as exc:
            pa.terminate()
            raise AudioError(f"cannot open audio input {self.name}: {exc}") from None
        self._pa = pa
        self._resample = Resampler(rate, self.sample_rate)
        self.state = SourceState.OPEN

    def read(self, max_samples: int) -> Optional[np.ndarray]:
        assert self._stream is not None and self._resample is not None
        n_in = max(1, int(round(max_samples * self._rate_in / self.sample_rate)))
        try:
            raw = self._stream.read(n_in, exception_on_overflow=False)
        except (OSError, IOError) as exc:
            self.state = SourceState.FAILED
            raise AudioError(f"audio input {self.name} failed: {exc}") from None
        return self._resample(np.frombuffer(raw, dtype="<i2").astype(np.int16))

    def close(self) -> None:
        try:
            if self._stream is not None:
                self._stream.stop_stream()
                self._stream.close()
        except (OSError, IOError):
            pass
        finally:
            self._stream = None
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None
            self.state = SourceState.CLOSED


def open_source(spec: str, sample_rate: int, realtime: bool = True) -> AudioSource:
    """Parse a source spec (`mic[:DEVICE]`, `file:PATH`, `stdin[@RATE]`, `silence`)."""
    kind, _, arg = spec.partition(":")
    if kind == "mic":
        return MicSource(arg or None, sample_rate)
    if kind == "file":
        if not arg:
            raise ConfigError("source 'file:' needs a path, e.g. file:speech.wav")
        return FileSource(Path(arg), sample_rate, realtime=realtime)
    if kind == "stdin" or kind.startswith("stdin@"):
        _, _, rate = kind.partition("@")
        return StdinSource(sample_rate, _input_rate(spec, rate) if rate else None)
    if kind == "silence":
        return SilenceSource(sample_rate, realtime=realtime, duration_s=_duration(spec, arg) if arg else None)
    if spec.endswith(".wav") and not arg:
        return FileSource(Path(spec), sample_rate, realtime=realtime)
    raise ConfigError(f"unknown audio source {spec!r} (use mic[:DEVICE], file:PATH, stdin or silence)")


def _input_rate(spec: str, text: str) -> int:
    """The `RATE` of `stdin@RATE`: a whole number of Hz that the resampler accepts."""
    if not text.isdigit() or not MIN_RATE_HZ <= int(text) <= MAX_RATE_HZ:
        raise ConfigError(f"audio source {spec!r}: the rate after '@' must be a whole number of Hz "
                          f"from {MIN_RATE_HZ} to {MAX_RATE_HZ}, e.g. stdin@16000")
    return int(text)


def _duration(spec: str, text: str) -> float:
    """The `SECONDS` of `silence:SECONDS`: a finite number >= 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"audio source {spec!r}: the duration after ':' must be a number of seconds >= 0")
    return seconds
