"""Synthetic speech for training a brand-new keyword without recordings.

The TTS engines on the machine (espeak-ng with its accents and voice variants, flite with its
voices) speak each word with a varied rate, pitch, tempo and level; sox resamples, trims the
silence and normalizes; every clip is one second of 16-bit mono audio with the word centred
(a little jitter). Output is Speech Commands layout: a folder per keyword and a folder per
negative word (near-misses such as `own`/`an` for `on`, and common words), which the training
loader turns into `_unknown_`. File names are `<word>_<voiceid>_nohash_<n>.wav`, so the
speaker-hash split keeps each synthetic voice in one split. Everything follows from the seed.

`synthesize_passages` reads long texts into one WAV: keyword-free background speech for
streaming evaluation. The engines and their voices are in `synth_voices`, the choice of
negative words in `synth_negatives`, the word lists and passages in `synth_words`.
"""
from __future__ import annotations

import json
import random
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from keywire.agent.audio_io import read_wav_native, write_wav
from keywire.protocol.errors import ConfigError

from .synth_negatives import choose_negatives
from .synth_voices import ESPEAK, FLITE, TTSEngineError, Voice, VoiceCatalog, first_line, run_tool
from .synth_words import PASSAGES

MANIFEST = "synth_manifest.json"
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Variation:
    """Ranges each clip's rendering parameters are drawn from."""

    speed_wpm: tuple[int, int] = (115, 205)
    pitch: tuple[int, int] = (15, 85)
    stretch: tuple[float, float] = (0.8, 1.3)
    pitch_cents: tuple[float, float] = (-350.0, 350.0)
    tempo: tuple[float, float] = (0.92, 1.08)
    peak_dbfs: tuple[float, float] = (-20.0, -1.0)
    jitter_s: float = 0.08


@dataclass(frozen=True)
class SynthConfig:
    """A synthetic dataset: keywords, negatives, voices and how many clips of each."""

    words: tuple[str, ...]
    out: Path
    per_word: int = 50
    per_negative: Optional[int] = None
    negatives: tuple[str, ...] = ()
    near_misses: int = 4
    common_negatives: int = 10
    voices: tuple[str, ...] = ()
    seed: int = 0
    rate: int = 16000
    clip_s: float = 1.0
    jobs: int = 1
    variation: Variation = field(default_factory=Variation)

    def clips_per_negative(self) -> int:
        return self.per_negative if self.per_negative is not None else max(1, self.per_word // 4)

    def validate(self) -> None:
        if not self.words:
            raise ConfigError("--words is empty: name at least one keyword")
        if self.per_word < 1:
            raise ConfigError("--per-word must be at least 1")
        if self.per_negative is not None and self.per_negative < 0:
            raise ConfigError("--per-negative must be 0 or more")
        if self.near_misses < 0 or self.common_negatives < 0:
            raise ConfigError("--near-misses and --common-negatives must be 0 or more")
        if not 8000 <= self.rate <= 48000:
            raise ConfigError(f"--rate {self.rate} is outside 8000..48000 Hz")
        if not 0.3 <= self.clip_s <= 10:
            raise ConfigError(f"clip length {self.clip_s} s is outside 0.3..10 s")
        if self.jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        for w in self.words + self.negatives:
            normalize_word(w)


@dataclass(frozen=True)
class ClipJob:
    """One clip to render: what to say, with which voice and parameters, into which file."""

    text: str
    folder: str
    voice: Voice
    path: Path
    params: dict


@dataclass(frozen=True)
class SynthReport:
    """What `synthesize_dataset` wrote."""

    out: Path
    counts: dict[str, int]
    keywords: tuple[str, ...]
    negatives: dict[str, str]
    voices: tuple[Voice, ...]
    failures: tuple[str, ...]
    manifest: Path

    def summary(self) -> str:
        kw = sum(self.counts.get(normalize_word(w), 0) for w in self.keywords)
        neg = sum(self.counts.values()) - kw
        return (f"{self.out}: {kw} keyword clips ({len(self.keywords)} words), {neg} negative clips "
                f"({len(self.negatives)} words), {len(self.voices)} voices, {len(self.failures)} failed")


# ---------------------------------------------------------------- words


_WORD = re.compile(r"^[^\W\d_][\w'\- ]*$")


def normalize_word(word: str) -> str:
    """Folder name of a word or phrase (`Hey Wire` -> `hey_wire`); `ConfigError` when unusable."""
    w = " ".join(word.strip().lower().split())
    if not w:
        raise ConfigError("empty word in the word list")
    if not _WORD.match(w) or len(w) > 40:
        raise ConfigError(f"word {word!r} must start with a letter and hold only letters, "
                          f"digits, spaces, ' and - (at most 40 characters)")
    return w.replace(" ", "_")


def parse_words(text: str) -> tuple[str, ...]:
    """`on,off` -> ("on", "off"); duplicates dropped; `ConfigError` on an empty list."""
    words: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        normalize_word(part)
        w = " ".join(part.strip().lower().split())
        if w not in words:
            words.append(w)
    if not words:
        raise ConfigError("--words is empty: name at least one keyword")
    return tuple(words)


# ---------------------------------------------------------------- rendering


def _draw(variation: Variation, voice: Voice, rng: random.Random) -> dict:
    v = variation
    p: dict = {"tempo": round(rng.uniform(*v.tempo), 3), "peak_dbfs": round(rng.uniform(*v.peak_dbfs), 1),
               "jitter": round(rng.uniform(-1, 1), 3)}
    if voice.engine == ESPEAK:
        p["speed_wpm"] = rng.randint(*v.speed_wpm)
        p["pitch"] = rng.randint(*v.pitch)
    else:
        p["stretch"] = round(rng.uniform(*v.stretch), 3)
        p["pitch_cents"] = round(rng.uniform(*v.pitch_cents))
    return p


def _tts(voice: Voice, text: str, params: dict, out: Path) -> None:
    """Speak `text` into `out` (engine's own rate); `TTSEngineError` when nothing comes out."""
    if voice.engine == ESPEAK:
        cmd = [ESPEAK, "-v", voice.name, "-s", str(params.get("speed_wpm", 160)),
               "-p", str(params.get("pitch", 50)), "-w", str(out), "--stdin"]
        r = run_tool(cmd, text)
    else:
        txt = out.with_suffix(".txt")
        txt.write_text(text + "\n")
        cmd = [FLITE, "-voice", voice.name, "--setf", f"duration_stretch={params.get('stretch', 1.0)}",
               "-f", str(txt), "-o", str(out)]
        r = run_tool(cmd)
    if r.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
        raise TTSEngineError(f"{voice.spec} could not say {text[:40]!r}: {first_line(r.stderr) or 'no audio'}")


def _sox(src: Path, dst: Path, rate: int, params: dict, tempo: float, trim: bool) -> np.ndarray:
    cmd = ["sox", "-R", "-V1", str(src), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(dst)]
    if params.get("pitch_cents"):
        cmd += ["pitch", str(params["pitch_cents"])]
    if abs(tempo - 1.0) > 1e-3:
        cmd += ["tempo", "-s", f"{tempo:.4f}"]
    if trim:
        cmd += ["silence", "1", "0.005", "-55d", "reverse", "silence", "1", "0.005", "-55d", "reverse"]
    cmd += ["gain", "-n", str(params["peak_dbfs"])]
    r = run_tool(cmd)
    if r.returncode != 0:
        raise TTSEngineError(f"sox failed on {src.name}: {first_line(r.stderr)}")
    return read_wav_native(dst)[0]


def render_clip(job: ClipJob, rate: int, clip_s: float, jitter_s: float) -> np.ndarray:
    """The finished clip: spoken, resampled, trimmed, fitted into `clip_s` seconds and centred."""
    n = int(round(clip_s * rate))
    fit = int(n * 0.94)
    with tempfile.TemporaryDirectory(prefix="keywire-synth-") as tmp:
        raw, proc = Path(tmp) / "raw.wav", Path(tmp) / "proc.wav"
        _tts(job.voice, job.text, job.params, raw)
        tempo = job.params["tempo"]
        x = _sox(raw, proc, rate, job.params, tempo, trim=True)
        if len(x) > fit:  # too long for the clip: speak it faster rather than cut the word
            x = _sox(raw, proc, rate, job.params, tempo * len(x) / fit * 1.02, trim=True)[:fit]
    if len(x) == 0 or int(np.abs(x.astype(np.int32)).max()) < 64:
        raise TTSEngineError(f"{job.voice.spec} produced silence for {job.text!r}")
    slack = n - len(x)
    shift = int(job.params["jitter"] * min(jitter_s * rate, slack // 2))
    start = slack // 2 + shift
    clip = np.zeros(n, dtype=np.int16)
    clip[start:start + len(x)] = x
    return clip


# ---------------------------------------------------------------- datasets


def _voice_cycle(voices: Sequence[Voice], rng: random.Random, flite_share: float = 0.2) -> list[Voice]:
    """A shuffled voice order in which flite's few voices still get about `flite_share` of clips."""
    esp = [v for v in voices if v.engine == ESPEAK]
    fl = [v for v in voices if v.engine == FLITE]
    reps = 1
    if esp and fl:
        reps = max(1, round(flite_share * len(esp) / ((1 - flite_share) * len(fl))))
    pool = esp + fl * reps
    rng.shuffle(pool)
    return pool


def plan(config: SynthConfig, voices: Sequence[Voice], negatives: dict[str, str]) -> list[ClipJob]:
    """Every clip of the dataset with its voice and parameters (deterministic in the seed)."""
    jobs: list[ClipJob] = []
    groups = [(w, config.per_word) for w in config.words]
    groups += [(w, config.clips_per_negative()) for w in negatives]
    for text, count in groups:
        folder = normalize_word(text)
        cycle = _voice_cycle(voices, random.Random(f"{config.seed}|voices|{folder}"))
        per_voice: dict[str, int] = {}
        for i in range(count):
            voice = cycle[i % len(cycle)]
            rng = random.Random(f"{config.seed}|clip|{folder}|{i}")
            n = per_voice.get(voice.id, 0)
            per_voice[voice.id] = n + 1
            path = config.out / folder / f"{folder}_{voice.id}_nohash_{n}.wav"
            jobs.append(ClipJob(text, folder, voice, path, _draw(config.variation, voice, rng)))
    return jobs


def synthesize_dataset(config: SynthConfig, progress: Optional[ProgressFn] = None,
                       catalog: Optional[VoiceCatalog] = None) -> SynthReport:
    """Render the whole dataset into `config.out` and write `synth_manifest.json` beside it.

    A clip a voice cannot say is reported in `failures`; when every clip fails the engine is
    unusable and `TTSEngineError` says so.
    """
    config.validate()
    catalog = catalog or VoiceCatalog.probe()
    voices = catalog.resolve(config.voices)
    keywords = tuple(" ".join(w.lower().split()) for w in config.words)
    negatives = choose_negatives(keywords, config.negatives, config.near_misses,
                                 config.common_negatives, config.seed)
    if config.clips_per_negative() == 0:
        negatives = {}
    clash = {normalize_word(n) for n in negatives} & {normalize_word(k) for k in keywords}
    if clash:
        raise ConfigError(f"negative word {sorted(clash)[0]!r} is also a keyword")
    jobs = plan(config, voices, negatives)
    config.out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    counts: dict[str, int] = {}
    records: list[dict] = []
    done = 0

    def work(job: ClipJob) -> Optional[str]:
        try:
            clip = render_clip(job, config.rate, config.clip_s, config.variation.jitter_s)
        except TTSEngineError as exc:
            return str(exc)
        write_wav(job.path, clip, config.rate)
        return None

    with ThreadPoolExecutor(max_workers=config.jobs) as pool:
        for job, err in zip(jobs, pool.map(work, jobs)):
            done += 1
            if err:
                failures.append(err)
            else:
                counts[job.folder] = counts.get(job.folder, 0) + 1
                records.append({"file": f"{job.folder}/{job.path.name}", "text": job.text,
                                "voice": job.voice.spec, **job.params})
            if progress:
                progress(done, len(jobs))
    if jobs and not records:
        raise TTSEngineError(f"no clip could be synthesized: {failures[0]}")
    manifest = config.out / MANIFEST
    manifest.write_text(json.dumps({
        "seed": config.seed, "rate": config.rate, "clip_s": config.clip_s,
        "keywords": list(keywords), "negatives": negatives,
        "voices": {v.id: v.spec for v in voices}, "variation": asdict(config.variation),
        "engines": engine_versions(), "failures": failures, "clips": records,
    }, indent=1) + "\n")
    return SynthReport(config.out, counts, keywords, negatives, tuple(voices), tuple(failures), manifest)


def engine_versions() -> dict[str, str]:
    out = {}
    for name, cmd in ((ESPEAK, [ESPEAK, "--version"]), (FLITE, [FLITE, "--version"]), ("sox", ["sox", "--version"])):
        try:
            out[name] = first_line(run_tool(cmd, timeout=10).stdout)
        except TTSEngineError as exc:
            out[name] = str(exc)
    return out


# ---------------------------------------------------------------- long passages


@dataclass(frozen=True)
class PassageSegment:
    voice: str
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class PassageResult:
    path: Path
    seconds: float
    segments: tuple[PassageSegment, ...]


def contains_word(text: str, words: Iterable[str]) -> Optional[str]:
    """The first of `words` that `text` holds as a whole word (case-insensitive), else None."""
    tokens = set(re.findall(r"[a-z']+", text.lower()))
    for w in words:
        if w.lower() in tokens:
            return w
    return None


def synthesize_passages(out: Path, passages: Sequence[str] = PASSAGES, voices: Sequence[str] = (),
                        seed: int = 0, rate: int = 16000, pause_s: tuple[float, float] = (0.4, 1.2),
                        forbidden: Sequence[str] = (), variation: Variation = Variation(),
                        catalog: Optional[VoiceCatalog] = None) -> PassageResult:
    """Read each passage with a different voice (varied rate, pitch, level) into one long WAV.

    Background speech for streaming evaluation: a passage holding a `forbidden` word (a keyword)
    is a `ConfigError`, so the result is keyword-free by construction.
    """
    if not passages:
        raise ConfigError("no passages to synthesize")
    for i, text in enumerate(passages):
        if not text.strip():
            raise ConfigError(f"passage {i} is empty")
        bad = contains_word(text, forbidden)
        if bad:
            raise ConfigError(f"passage {i} contains the keyword {bad!r}")
    catalog = catalog or VoiceCatalog.probe()
    pool = catalog.resolve(voices)
    rng = random.Random(f"{seed}|passages")
    order = _voice_cycle(pool, rng)
    parts: list[np.ndarray] = []
    segments: list[PassageSegment] = []
    pos = 0
    for i, text in enumerate(passages):
        voice = order[i % len(order)]
        params = _draw(variation, voice, rng)
        params["peak_dbfs"] = round(rng.uniform(-12.0, -3.0), 1)
        gap = np.zeros(int(rng.uniform(*pause_s) * rate), dtype=np.int16)
        with tempfile.TemporaryDirectory(prefix="keywire-passage-") as tmp:
            raw, proc = Path(tmp) / "raw.wav", Path(tmp) / "proc.wav"
            _tts(voice, " ".join(text.split()), params, raw)
            x = _sox(raw, proc, rate, params, params["tempo"], trim=True)
        parts += [gap, x]
        pos += len(gap)
        segments.append(PassageSegment(voice.spec, pos / rate, (pos + len(x)) / rate, text))
        pos += len(x)
    tail = np.zeros(int(pause_s[0] * rate), dtype=np.int16)
    samples = np.concatenate(parts + [tail])
    write_wav(out, samples, rate)
    return PassageResult(out, len(samples) / rate, tuple(segments))
