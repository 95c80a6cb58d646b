"""The one WAV reader, writer and resampler (`agent/audio_io.py`) on files sox writes."""
from __future__ import annotations

import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soxr

from keywire.agent.audio_io import (Resampler, WavReader, read_wav, read_wav_native, resample,
                                    write_wav)
from keywire.protocol.errors import AudioError
from tests.fixtures.speech import synthesize


@pytest.fixture(scope="module")
def speech() -> tuple[Path, np.ndarray]:
    """A spoken word at 16 kHz, 16-bit mono, and its samples."""
    path = synthesize("seven", rate=16000)
    return path, read_wav_native(path)[0]


def sox(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["sox", "-D", str(src), *args, str(dst)], check=True, capture_output=True)
    return dst


@pytest.mark.parametrize("args, tolerance", [
    (("-b", "8", "-e", "unsigned-integer"), 256),  # 8-bit keeps the top 8 bits
    (("-b", "24",), 1),
    (("-b", "32",), 1),
    (("-b", "32", "-e", "floating-point"), 1),
    (("-b", "64", "-e", "floating-point"), 1),
    (("-b", "16", "-c", "2"), 1),  # both channels equal: the average is the signal
    (("-b", "24", "-c", "3"), 1),  # sox writes WAVE_FORMAT_EXTENSIBLE for more than 2 channels
])
def test_every_sample_format_reads_as_mono_int16(speech, tmp_path, args, tolerance):
    path, ref = speech
    x, rate = read_wav_native(sox(path, tmp_path / "x.wav", *args))
    assert rate == 16000 and x.dtype == np.int16 and len(x) == len(ref)
    assert int(np.abs(x.astype(np.int32) - ref).max()) <= tolerance


def test_chunked_reading_equals_whole_file(speech, tmp_path):
    stereo = sox(speech[0], tmp_path / "st.wav", "-b", "24", "-c", "2")
    whole = read_wav_native(stereo)[0]
    with WavReader(stereo) as w:
        parts = []
        while len(part := w.read(333)):
            parts.append(part)
    assert np.array_equal(np.concatenate(parts), whole)


def test_file_cut_mid_frame_reads_up_to_the_cut(speech, tmp_path):
    data = speech[0].read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:-1])
    with WavReader(cut) as w:
        x = w.read_all()
        assert w.truncated and w.read(100).size == 0
    assert np.array_equal(x, speech[1][:-1])


def test_streaming_writer_size_reads_to_the_end(speech, tmp_path):
    data = bytearray(speech[0].read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)  # what a writer to a pipe leaves
    p = tmp_path / "open.wav"
    p.write_bytes(bytes(data))
    assert np.array_equal(read_wav_native(p)[0], speech[1])


def _header(rate: int = 16000, channels: int = 1, tag: int = 1, bits: int = 16, data: bytes = b"\0\0") -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * channels * bits // 8) % 2 ** 32, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("content, message", [
    (b"", "file is empty"),
    (b"RIFX" + b"\0" * 60, "no RIFF/WAVE header"),
    (b"RIFF\0\0\0\0WAVE", "no 'fmt ' chunk"),
    (_header()[:-10], "no 'data' chunk"),
    (_header(rate=0), "sample rate 0 Hz"),
    (_header(rate=4_000_000_000), "sample rate 4000000000 Hz"),
    (_header(channels=0), "0 channels"),
    (_header(tag=6, bits=8, data=b"\0"), "A-law WAV is not supported"),
    (_header(bits=12), "12-bit PCM WAV is not supported"),
])
def test_unusable_headers_are_named(tmp_path, content, message):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=message) as exc:
        read_wav_native(p)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_float_nan_and_infinity_are_clipped(tmp_path):
    x = np.array([np.nan, np.inf, -np.inf, 0.5, -2.0], np.float32).tobytes()
    p = tmp_path / "f.wav"
    p.write_bytes(_header(tag=3, bits=32, data=x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a broken file is clipped quietly, not warned about
        samples, rate = read_wav_native(p)
    assert rate == 16000 and samples.tolist() == [0, 32767, -32768, 16384, -32768]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        read_wav_native(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a directory"):
        read_wav_native(tmp_path)


def test_resampler_flushes_once():
    x = (np.random.default_rng(0).standard_normal(44100) * 3000).astype(np.int16)
    r = Resampler(44100, 16000)
    body = r(x)
    tail = r.flush()
    assert len(body) + len(tail) == 16000
    assert r.flush().size == 0 and r(x).size == 0  # soxr raises on input after its last call
    assert np.array_equal(np.concatenate([body, tail]), resample(x, 44100, 16000))
    assert np.array_equal(resample(x, 44100, 16000), soxr.resample(x, 44100, 16000, quality="HQ"))
    same = Resampler(16000, 16000)
    assert np.array_equal(same(x), x) and same.flush().size == 0


def test_read_wav_resamples_with_the_resampler(speech, tmp_path):
    p44 = sox(speech[0], tmp_path / "r44.wav", "-r", "44100")
    x44, rate = read_wav_native(p44)
    assert rate == 44100
    assert np.array_equal(read_wav(p44, 16000), resample(x44, 44100, 16000))
    assert np.array_equal(read_wav(speech[0], 16000), speech[1])


def test_write_is_atomic_and_saturates(tmp_path):
    p = tmp_path / "sub" / "w.wav"
    write_wav(p, np.array([1.6, 40000.0, -40000.0, -3.2]), 8000)
    x, rate = read_wav_native(p)
    assert rate == 8000 and x.tolist() == [2, 32767, -32768, -3]
    write_wav(p, np.arange(10, dtype=np.int16), 16000)  # replaces the old file in one step
    x, rate = read_wav_native(p)
    assert rate == 16000 and np.array_equal(x, np.arange(10))
    assert sorted(f.name for f in p.parent.iterdir()) == ["w.wav"]  # no temporary left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AudioError, match="cannot write"):
        write_wav(blocker / "w.wav", np.zeros(4, np.int16), 16000)
