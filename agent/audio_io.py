"""Audio I/O for all of keywire: the one WAV reader, the one WAV writer, the one resampler.

The agent, the CLI, training and the tests read and write audio only through this module,
so a clip is turned into samples the same way wherever it is used:

* `WavReader` parses a RIFF/WAVE header (PCM 8/16/24/32-bit, IEEE float 32/64-bit, plain or
  WAVE_FORMAT_EXTENSIBLE, any channel count) and yields mono int16 frames in chunks. Python's
  `wave` reads neither float nor (before 3.12) extensible files, and the device has no scipy,
  hence this small parser. A header it cannot use is an `AudioError` naming the file; a file
  cut mid-frame loses only the partial frame.
* `Resampler` is soxr's streaming resampler (HQ) with one flush at the end; `resample` runs a
  whole clip through the same resampler, so a file streamed by the agent and a clip read by
  training differ only by where soxr's chunk boundaries fall.
* `write_wav` writes mono 16-bit PCM atomically (temporary file, then rename): a reader never
  sees half a file.
"""
from __future__ import annotations

import contextlib
import os
import stat
import struct
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

import numpy as np

from keywire.protocol.errors import AudioError, file_error

PathLike = Union[str, Path]
MIN_RATE_HZ = 1000
MAX_RATE_HZ = 768_000
_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_ENCODINGS = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM", 0x0055: "MP3"}


@dataclass(frozen=True)
class WavFormat:
    """What a WAV header says: rate, channels, bytes per sample, `pcm` or `float`, frames."""

    sample_rate: int
    channels: int
    sample_width: int
    encoding: str
    n_frames: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.sample_width

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate


def _decode(raw: bytes, fmt: WavFormat) -> np.ndarray:
    """Whole frames of `raw` as mono int16 (channels averaged, toward zero)."""
    w = fmt.sample_width
    if fmt.encoding == "float":
        with np.errstate(all="ignore"):  # NaN and infinities in a broken file are clipped, not warned about
            f = np.nan_to_num(np.frombuffer(raw, "<f4" if w == 4 else "<f8").astype(np.float64))
            x = np.clip(np.round(f * 32768.0), -32768, 32767).astype(np.int32)
    elif w == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif w == 2:
        x = np.frombuffer(raw, "<i2").astype(np.int32)
    elif w == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 16
    else:
        x = (np.frombuffer(raw, "<i4") >> 16).astype(np.int32)
    if fmt.channels > 1:
        return x.reshape(-1, fmt.channels).mean(axis=1).astype(np.int16)
    return x.astype(np.int16)


class WavReader:
    """A WAV file opened for reading; `read(n)` returns up to `n` mono int16 frames at the
    file's own rate (empty at the end). Use as a context manager or call `close()`."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise file_error(exc, AudioError, "audio file", self.path) from None
        try:
            self.format, self._left = self._parse_header()
        except AudioError:
            self._f.close()
            raise
        except OSError as exc:
            self._f.close()
            raise AudioError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self._carry = b""
        self.truncated = False  # the data ended inside a frame (the partial frame is dropped)

    def _bad(self, what: str) -> AudioError:
        return AudioError(f"{self.path}: not a usable WAV file ({what})")

    def _parse_header(self) -> tuple[WavFormat, int]:
        head = self._f.read(12)
        if len(head) == 0:
            raise self._bad("the file is empty")
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise self._bad("no RIFF/WAVE header")
        fmt: Optional[tuple[int, int, int, int]] = None
        while True:
            chunk = self._f.read(8)
            if len(chunk) < 8:
                raise self._bad("no 'fmt ' chunk" if fmt is None else "no 'data' chunk")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = self._f.read(size)
                if size < 16 or len(body) < 16:
                    raise self._bad("'fmt ' chunk too short")
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == _EXTENSIBLE:
                    if len(body) < 26:
                        raise self._bad("extensible 'fmt ' chunk too short")
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, rate, bits)
                if size % 2:
                    self._f.read(1)
            elif cid == b"data":
                if fmt is None:
                    raise self._bad("'data' before 'fmt '")
                return self._format(fmt, size)
            else:
                self._f.seek(size + size % 2, os.SEEK_CUR)

    def _format(self, fmt: tuple[int, int, int, int], size: int) -> tuple[WavFormat, int]:
        tag, channels, rate, bits = fmt
        if tag not in (_PCM, _FLOAT):
            name = _ENCODINGS.get(tag, f"format tag 0x{tag:04x}")
            raise AudioError(f"{self.path}: {name} WAV is not supported; use PCM (8, 16, 24 or 32-bit) "
                             "or 32/64-bit float")
        if tag == _PCM and bits not in (8, 16, 24, 32) or tag == _FLOAT and bits not in (32, 64):
            raise AudioError(f"{self.path}: {bits}-bit {'float' if tag == _FLOAT else 'PCM'} WAV is not supported")
        if channels < 1:
            raise self._bad("0 channels")
        if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
            raise self._bad(f"sample rate {rate} Hz, expected {MIN_RATE_HZ}-{MAX_RATE_HZ}")
        st = os.fstat(self._f.fileno())
        if stat.S_ISREG(st.st_mode):  # a size left open by a streaming writer, or a cut file
            size = min(size, st.st_size - self._f.tell())
        width = bits // 8
        wf = WavFormat(rate, channels, width, "float" if tag == _FLOAT else "pcm", size // (channels * width))
        return wf, size

    def read(self, n_frames: int) -> np.ndarray:
        """Up to `n_frames` mono int16 frames; an empty array at the end of the data."""
        fb = self.format.frame_bytes
        want = min(max(0, n_frames) * fb, self._left)
        raw = self._f.read(want) if want else b""
        self._left = self._left - len(raw) if len(raw) == want else 0
        raw = self._carry + raw
        whole = len(raw) - len(raw) % fb
        self._carry = raw[whole:]
        if self._left == 0 and self._carry:
            self.truncated, self._carry = True, b""
        return _decode(raw[:whole], self.format)

    def read_all(self) -> np.ndarray:
        """Every remaining frame."""
        return self.read(self.format.n_frames + 1)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "WavReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Resampler:
    """Streaming resampling of mono int16 from `rate_in` to `rate_out` (soxr, HQ); the
    identity when the rates match. Call `flush()` at the end for the last samples; any later
    flush or input is ignored (soxr itself fails on input after its last call)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None
        self._flushed = False
        if rate_in != rate_out:
            import soxr

            self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16", quality="HQ")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.int16)
        if self._stream is None:
            return x
        if self._flushed:
            return np.zeros(0, np.int16)
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """The samples soxr still holds (once; empty afterwards)."""
        if self._stream is None or self._flushed:
            return np.zeros(0, np.int16)
        self._flushed = True
        return self._stream.resample_chunk(np.zeros(0, np.int16), last=True)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A whole int16 clip through `Resampler` (input and flush)."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.int16)
    r = Resampler(rate_in, rate_out)
    return np.concatenate([r(x), r.flush()])


def read_wav_native(path: PathLike) -> tuple[np.ndarray, int]:
    """A whole WAV as mono int16 at its own rate, and that rate."""
    with WavReader(path) as w:
        return w.read_all(), w.format.sample_rate


def read_wav(path: PathLike, sample_rate: int) -> np.ndarray:
    """A whole WAV as mono int16 resampled to `sample_rate` Hz."""
    x, rate = read_wav_native(path)
    return resample(x, rate, sample_rate)


def write_wav(path: PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write int16 samples as a mono 16-bit PCM WAV, atomically; returns the path. Values
    outside int16 are saturated, not wrapped."""
    path = Path(path)
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = np.clip(np.round(x.astype(np.float64)), -32768, 32767).astype(np.int16)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(x.astype("<i2").tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise AudioError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
