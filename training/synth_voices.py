"""Text-to-speech engines on this machine (espeak-ng, flite, and sox for resampling and
trimming): whether each is usable, which voices it has, and `--voices` resolved to `Voice`s.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from keywire.protocol.errors import ConfigError, ExitCode, KeywireError

ESPEAK, FLITE = "espeak-ng", "flite"
ENGINES = (ESPEAK, FLITE)
# espeak-ng variants that sound like people (robots, whispers and effects left out).
HUMAN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "adam", "Alex", "Alicia", "Andrea",
    "Andy", "Annie", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
    "Gene", "john", "linda", "max", "Michael", "Mike", "norbert", "paul", "pedro", "quincy", "rob",
    "robert", "shelby", "steph", "travis", "victor", "zac", "grandma", "grandpa", "anika",
)
# flite voices that can say any text (awb_time only knows clock times).
_FLITE_LIMITED = {"awb_time"}


class TTSEngineError(KeywireError):
    """A text-to-speech engine or sox is missing or fails on this machine."""

    exit_code = ExitCode.SPEECH_ENGINE


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an engine and its voice name (`en-us+f3`, `slt`)."""

    engine: str
    name: str

    @property
    def spec(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def id(self) -> str:
        """Speaker id for file names: short, stable, never contains `_`."""
        return hashlib.sha1(self.spec.encode()).hexdigest()[:8]


def run_tool(cmd: list[str], text: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run an engine or sox; `TTSEngineError` when it is missing or hangs."""
    try:
        return subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise TTSEngineError(f"{cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise TTSEngineError(f"{cmd[0]} did not finish within {timeout:.0f} s") from None


def engine_status() -> dict[str, Optional[str]]:
    """For espeak-ng, flite and sox: None when usable, else why not (probed by speaking)."""
    status: dict[str, Optional[str]] = {}
    with tempfile.TemporaryDirectory(prefix="keywire-tts-") as tmp:
        out = Path(tmp) / "probe.wav"
        probes = {
            ESPEAK: ([ESPEAK, "-v", "en-us", "-w", str(out), "--stdin"], "test"),
            FLITE: ([FLITE, "-voice", "slt", "-t", "test", "-o", str(out)], None),
            "sox": (["sox", "-n", "-r", "16000", str(out), "trim", "0", "0.01"], None),
        }
        for name, (cmd, text) in probes.items():
            if shutil.which(cmd[0]) is None:
                status[name] = f"{cmd[0]} is not installed"
                continue
            out.unlink(missing_ok=True)
            try:
                r = run_tool(cmd, text, timeout=30)
            except TTSEngineError as exc:
                status[name] = str(exc)
                continue
            ok = r.returncode == 0 and out.exists() and out.stat().st_size > 44
            status[name] = None if ok else f"{name} failed: {first_line(r.stderr) or 'no audio written'}"
    return status


def first_line(text: str) -> str:
    """The first non-blank line of a tool's output (for one-line errors)."""
    return next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")


def espeak_languages() -> dict[str, str]:
    """espeak-ng language codes -> voice file (MBROLA voices left out: they need mbrola)."""
    r = run_tool([ESPEAK, "--voices"])
    langs: dict[str, str] = {}
    for line in r.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and not cols[4].startswith("mb/"):
            langs.setdefault(cols[1], cols[4])
    return langs


def espeak_variants() -> list[str]:
    """Names usable after `+` in an espeak-ng voice (`en-us+f3`)."""
    r = run_tool([ESPEAK, "--voices=variant"])
    out = []
    for line in r.stdout.splitlines()[1:]:
        tok = next((t for t in line.split() if t.startswith("!v/")), None)
        if tok:
            out.append(tok[3:])
    return out


def flite_voices() -> list[str]:
    r = run_tool([FLITE, "-lv"])
    text = r.stdout + r.stderr
    _, _, names = text.partition(":")
    return [v for v in names.split()]


@dataclass(frozen=True)
class VoiceCatalog:
    """Voices the machine can speak with, and why an engine is unusable."""

    espeak_languages: tuple[str, ...]
    espeak_variants: tuple[str, ...]
    flite_voices: tuple[str, ...]
    status: dict[str, Optional[str]]

    @classmethod
    def probe(cls) -> "VoiceCatalog":
        status = engine_status()
        langs = tuple(espeak_languages()) if status[ESPEAK] is None else ()
        variants = tuple(espeak_variants()) if status[ESPEAK] is None else ()
        fv = tuple(flite_voices()) if status[FLITE] is None else ()
        return cls(langs, variants, fv, status)

    def default_voices(self) -> list[Voice]:
        """Every English espeak-ng accent, plain and with each human-sounding variant, and
        every general flite voice."""
        out: list[Voice] = []
        accents = [lang for lang in self.espeak_languages if lang == "en" or lang.startswith("en-")]
        variants = [v for v in HUMAN_VARIANTS if v in self.espeak_variants]
        for acc in accents:
            out.append(Voice(ESPEAK, acc))
            out += [Voice(ESPEAK, f"{acc}+{v}") for v in variants]
        out += [Voice(FLITE, v) for v in self.flite_voices if v not in _FLITE_LIMITED]
        return out

    def usable_or_raise(self, engine: str) -> None:
        if self.status.get("sox"):
            raise TTSEngineError(f"sox is needed to resample and trim: {self.status['sox']}")
        if self.status.get(engine):
            raise TTSEngineError(f"TTS engine {engine} is unusable: {self.status[engine]}")

    def resolve(self, specs: Sequence[str]) -> list[Voice]:
        """Voices from `--voices` items: `espeak-ng`/`flite` (all of that engine), `en-gb+f3`,
        `espeak-ng:en-gb`, `slt`, `flite:slt`; `ConfigError` naming an unknown voice."""
        if not specs:
            if self.status.get("sox"):
                raise TTSEngineError(f"sox is needed to resample and trim: {self.status['sox']}")
            voices = self.default_voices()
            if not voices:
                raise TTSEngineError("no TTS engine is usable: " + "; ".join(
                    f"{k}: {v}" for k, v in self.status.items() if v))
            return voices
        out: list[Voice] = []
        defaults = self.default_voices()
        for raw in specs:
            spec = raw.strip()
            if not spec:
                continue
            if spec in ENGINES:
                self.usable_or_raise(spec)
                out += [v for v in defaults if v.engine == spec]
                continue
            engine, sep, name = spec.partition(":")
            if not sep:
                engine, name = (FLITE if spec in self.flite_voices or spec in _FLITE_LIMITED else ESPEAK), spec
            if engine not in ENGINES:
                raise ConfigError(f"unknown TTS engine {engine!r} in voice {raw!r} (use espeak-ng or flite)")
            self.usable_or_raise(engine)
            if engine == FLITE:
                if name not in self.flite_voices:
                    raise ConfigError(f"unknown voice {raw!r}: flite has {', '.join(self.flite_voices)}")
            else:
                lang, _, variant = name.partition("+")
                if lang not in self.espeak_languages:
                    raise ConfigError(f"unknown voice {raw!r}: espeak-ng has no language {lang!r}")
                if variant and variant not in self.espeak_variants:
                    raise ConfigError(f"unknown voice {raw!r}: espeak-ng has no variant {variant!r}")
            out.append(Voice(engine, name))
        if not out:
            raise ConfigError("--voices names no voice")
        return list(dict.fromkeys(out))
