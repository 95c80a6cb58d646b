"""PortAudio input devices, and a PortAudio start-up that does not flood stderr.

When PortAudio initialises it probes every ALSA PCM in the configuration and tries to reach a
JACK server. Without a sound card (or without JACK) ALSA and libjack each print their
diagnostics straight to stderr: about 50 lines every time the agent retries a missing
microphone. `start_portaudio` routes those messages to the `keywire.audio` logger at DEBUG
level instead (visible with `--debug`): ALSA's through `snd_lib_error_set_handler`, JACK's
through `jack_set_error_function`/`jack_set_info_function`, both process-wide and installed
once. Nothing that matters is lost: a device that cannot be opened is still an exception from
PyAudio, which the callers turn into an `AudioError`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from typing import Any, Optional

from keywire.protocol.errors import AudioError
from keywire.protocol.text import printable

log = logging.getLogger("keywire.audio")

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...):
# the fixed arguments are enough to say where ALSA complained; the variadic ones are ignored.
_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_char_p)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_installed: list[Any] = []  # the C callbacks and libraries, kept alive for the process's lifetime
_lock = threading.Lock()


def _text(raw: Optional[bytes]) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


@_ALSA_HANDLER
def _alsa_message(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
    log.debug("ALSA %s:%d (%s) %s%s", _text(file), line, _text(function), _text(fmt),
              f" [error {err}]" if err else "")


@_JACK_HANDLER
def _jack_message(message: bytes) -> None:
    log.debug("JACK %s", _text(message))


def _load(name: str) -> Optional[ctypes.CDLL]:
    path = ctypes.util.find_library(name)
    candidates = [path] if path else []
    candidates.append({"asound": "libasound.so.2", "jack": "libjack.so.0"}[name])
    for candidate in candidates:
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def quiet_audio_libraries() -> None:
    """Send ALSA's and JACK's stderr diagnostics to the debug log (once per process; a library
    that is not installed is skipped)."""
    with _lock:
        if _installed:
            return
        alsa = _load("asound")
        if alsa is not None:
            alsa.snd_lib_error_set_handler.argtypes = [_ALSA_HANDLER]
            alsa.snd_lib_error_set_handler(_alsa_message)
        jack = _load("jack")
        if jack is not None:
            for setter in ("jack_set_error_function", "jack_set_info_function"):
                fn = getattr(jack, setter, None)
                if fn is not None:
                    fn.argtypes = [_JACK_HANDLER]
                    fn.restype = None
                    fn(_jack_message)
        _installed.extend([alsa, jack, _alsa_message, _jack_message])


def start_portaudio() -> Any:
    """A `pyaudio.PyAudio` instance (PortAudio initialised) without ALSA/JACK noise on stderr."""
    try:
        import pyaudio
    except ImportError as exc:  # pragma: no cover - pyaudio is a dependency
        raise AudioError("microphones need PyAudio (pip install pyaudio)") from exc
    quiet_audio_libraries()
    return pyaudio.PyAudio()


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can capture (what `--source mic:INDEX` or `mic:NAME` opens)."""

    index: int
    name: str
    channels: int
    default_rate: int
    host_api: str
    is_default: bool

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "channels": self.channels,
                "default_rate": self.default_rate, "host_api": self.host_api, "default": self.is_default}


def input_devices() -> list[InputDevice]:
    """Every PortAudio device with at least one input channel, in PortAudio's order."""
    pa = start_portaudio()
    try:
        try:
            default_index = int(pa.get_default_input_device_info()["index"])
        except (IOError, OSError):  # no default input device
            default_index = -1
        found = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            channels = int(info.get("maxInputChannels", 0))
            if channels <= 0:
                continue
            api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
            found.append(InputDevice(index=i, name=str(info["name"]), channels=channels,
                                     default_rate=int(info["defaultSampleRate"]), host_api=str(api),
                                     is_default=i == default_index))
        return found
    finally:
        pa.terminate()


def device_table(devices: list[InputDevice]) -> str:
    """Aligned text table of input devices, the default one marked with `*`."""
    rows = [("index", "channels", "rate", "api", "name")]
    rows += [(f"{d.index}{'*' if d.is_default else ''}", str(d.channels), str(d.default_rate),
              printable(d.host_api, 40), printable(d.name, 120))  # names come from USB descriptors
             for d in devices]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  ".join([r[0].rjust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]),
                        r[3].ljust(widths[3]), r[4]]).rstrip() for r in rows]
    return "\n".join(lines)
