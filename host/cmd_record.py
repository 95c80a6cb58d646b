"""`keywire record WORD --out DIR -n 20`: record takes of a word from the microphone.

Each take is written in Speech Commands layout, `DIR/WORD/<speaker>_nohash_<n>.wav`: 1 s of
mono 16-bit audio at 16 kHz, centred on the speech, so recordings of your own voice drop into
any recipe's `data` folder next to downloaded clips (the speaker id keeps your takes on one side
of the speaker split). The microphone is the agent's `mic` source (PortAudio through PyAudio,
`--device` as an index or name from `keywire-agent devices`), opened once for the session so no
audio is lost between prompts. After each prompt the command listens for `--seconds`; a take
with no speech in it, or with speech running into either end of the listening window, is
asked for again.
"""
from __future__ import annotations

import getpass
import hashlib
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Union

import numpy as np
import typer

from keywire.protocol.errors import AudioError, ConfigError

RATE_HZ = 16000        # Speech Commands' rate and clip length
CLIP_S = 1.0
FRAME_S = 0.01         # level measured in 10 ms frames
EDGE_S = 0.05          # speech this close to a window's end was probably cut off
MAX_TRIES = 3          # prompts per take before giving up
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*")
_SPEAKER = re.compile(r"[A-Za-z0-9]+")  # no "_": the speaker id ends at "_nohash_"


def register(app: typer.Typer) -> None:
    app.command("record")(record)


@dataclass(frozen=True)
class Take:
    """A clip centred on the speech found in one listening window."""

    samples: np.ndarray  # int16, CLIP_S long
    speech_s: float      # duration from the first to the last frame above the speech level
    peak_dbfs: float


def default_speaker() -> str:
    """A stable 8-hex-digit id for this user on this machine (Speech Commands' speaker ids look alike)."""
    return hashlib.sha1(f"{getpass.getuser()}@{socket.gethostname()}".encode()).hexdigest()[:8]


def frame_levels(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS level of each 10 ms frame in dBFS."""
    n = int(rate * FRAME_S)
    frames = x[: len(x) - len(x) % n].astype(np.float64).reshape(-1, n) / 32768.0
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def centre_on_speech(x: np.ndarray, rate: int = RATE_HZ, min_dbfs: float = -45.0) -> Union[Take, str]:
    """Cut `CLIP_S` of `x` centred on its speech, or say why there is no usable take.

    Speech is every frame at least 10 dB above the window's quiet floor (its 10th-percentile
    frame) and above `min_dbfs`; the clip is centred on the energy centroid of those frames."""
    length = int(CLIP_S * rate)
    if len(x) < length:
        return f"listening window shorter than {CLIP_S:g} s"
    levels = frame_levels(x, rate)
    floor = float(np.percentile(levels, 10))
    speech = np.flatnonzero(levels >= max(floor + 10.0, min_dbfs))
    if len(speech) == 0:
        return f"no speech heard (loudest {levels.max():.0f} dBFS, needs {max(floor + 10.0, min_dbfs):.0f})"
    frame = int(rate * FRAME_S)
    first, last = speech[0] * frame, (speech[-1] + 1) * frame
    edge = int(EDGE_S * rate)
    if first < edge or last > len(levels) * frame - edge:
        return "speech runs into the end of the listening window"
    power = 10 ** (levels[speech] / 10)
    centre = int(np.sum((speech + 0.5) * frame * power) / np.sum(power))
    start = min(max(0, centre - length // 2), len(x) - length)
    return Take(samples=x[start:start + length].astype(np.int16), speech_s=(last - first) / rate,
                peak_dbfs=float(levels.max()))


def next_index(folder: Path, speaker: str) -> int:
    """First take number not yet used by `speaker` in `folder` (a session adds to earlier ones)."""
    taken = [int(m.group(1)) for p in folder.glob(f"{speaker}_nohash_*.wav")
             if (m := re.fullmatch(rf"{re.escape(speaker)}_nohash_(\d+)\.wav", p.name))]
    return max(taken, default=-1) + 1


def listen(source, seconds: float) -> np.ndarray:
    """`seconds` of audio from an open source, at its rate."""
    want = int(seconds * source.sample_rate)
    parts: list[np.ndarray] = []
    have = 0
    while have < want:
        chunk = source.read(min(1600, want - have))
        if chunk is None:
            raise AudioError(f"audio input {source.name} ended")
        parts.append(chunk)
        have += len(chunk)
    return np.concatenate(parts)[:want] if parts else np.zeros(0, np.int16)


def record(
    word: Annotated[str, typer.Argument(help="The word to say (its folder in OUT).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder; takes go to OUT/WORD/.")],
    count: Annotated[int, typer.Option("--count", "-n", help="Takes to record.")] = 20,
    device: Annotated[Optional[str], typer.Option("--device", help="Input device index or name (keywire-agent devices); default: the system's.")] = None,
    speaker: Annotated[Optional[str], typer.Option("--speaker", help="Speaker id in the file names (letters and digits); default: derived from user and host.")] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="Listening window per take; the 1 s clip is cut from it.")] = 2.0,
    min_dbfs: Annotated[float, typer.Option("--min-dbfs", help="Quietest level that counts as speech.")] = -45.0,
) -> None:
    """Prompt for WORD COUNT times and save each take as 1 s, 16 kHz, centred on the speech,
    in Speech Commands layout (OUT/WORD/SPEAKER_nohash_N.wav)."""
    from keywire.agent.audio_io import write_wav
    from keywire.agent.sources import MicSource

    if not _WORD.fullmatch(word):
        raise ConfigError(f"word {word!r} cannot be a folder name (letters, digits, ' _ - only)")
    speaker = speaker if speaker is not None else default_speaker()
    if not _SPEAKER.fullmatch(speaker):
        raise ConfigError(f"--speaker {speaker!r}: letters and digits only")
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if not CLIP_S + 2 * EDGE_S < seconds <= 30:
        raise ConfigError(f"--seconds must be more than {CLIP_S + 2 * EDGE_S:g} and at most 30, got {seconds:g}")
    folder = out / word
    folder.mkdir(parents=True, exist_ok=True)
    first = next_index(folder, speaker)
    mic = MicSource(device, RATE_HZ)
    mic.open()
    try:
        for i in range(count):
            path = folder / f"{speaker}_nohash_{first + i}.wav"
            for attempt in range(MAX_TRIES):
                typer.echo(f"take {i + 1}/{count}: say '{word}'" + (" (again)" if attempt else ""))
                take = centre_on_speech(listen(mic, seconds), RATE_HZ, min_dbfs)
                if isinstance(take, Take):
                    write_wav(path, take.samples, RATE_HZ)
                    typer.echo(f"  saved {path} (speech {take.speech_s:.2f} s, peak {take.peak_dbfs:.0f} dBFS)")
                    break
                typer.echo(f"  {take}")
            else:
                raise AudioError(f"no usable take of {word!r} in {MAX_TRIES} tries; "
                                 "check the microphone (keywire-agent devices) and --min-dbfs")
    finally:
        mic.close()
    typer.echo(f"{count} takes of '{word}' by speaker {speaker} in {folder}")
