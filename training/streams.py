"""Long test streams for streaming evaluation: keywords at random spacing in speech and noise.

A device listens all day, so keyword spotters are judged on long streams, not on clips:
how many inserted keywords it finds and how often it fires on keyword-free audio. This
module builds such streams reproducibly from a seed:

* a *background bed* of random segments from background material (speech passages,
  `_unknown_` words, `_silence_` snippets, noise recordings), each brought to a level
  around `background_dbfs` and cross-faded into the next;
* *positive* streams: keyword clips (Speech Commands layout: `DIR/<keyword>/*.wav`) added
  onto the bed at random, varied gaps, each scaled so that the RMS of its voiced part is
  `snr_db` above the RMS of the background under it (voiced part +- 0.5 s); ground truth
  (start/end of the voiced part) is recorded per occurrence. The background around each
  keyword does not depend on the gaps, so two spacings differ in the spacing only;
* *background* streams: the bed alone, for false accepts per hour.

Streams save as WAV plus an Audacity label file (`start<TAB>end<TAB>keyword`, seconds) and
load back exactly. Everything is numpy; nothing here imports TensorFlow.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from keywire.agent.audio_io import read_wav, write_wav
from keywire.protocol.errors import ConfigError

AUDIO_SUFFIXES = (".wav",)
_FRAME_S = 0.010  # energy frame for voiced-part detection
_VOICED_DB_BELOW_PEAK = 30.0  # frames within this of the loudest frame are "voiced"
_FADE_S = 0.020  # cross-fade between background segments
PRE_ROLL_S = 1.0  # background of a keyword's own tile before its voiced part (see _positive_stream)


# ----------------------------------------------------------------------------- levels
def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to int16 full scale (-inf for digital silence)."""
    if len(x) == 0:
        return float("-inf")
    r = float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))
    return 20.0 * np.log10(r / 32768.0) if r > 0 else float("-inf")


def voiced_span(x: np.ndarray, sample_rate: int = 16000) -> tuple[int, int]:
    """(start, end) sample indices of the voiced part: first to last 10 ms frame that is
    within 30 dB of the loudest frame and 10 dB above the clip's noise floor. A clip of
    digital silence returns the whole clip."""
    hop = max(1, int(_FRAME_S * sample_rate))
    n = len(x) // hop
    if n == 0:
        return 0, len(x)
    e = np.mean(np.square(x[: n * hop].astype(np.float64).reshape(n, hop)), axis=1)
    peak = float(e.max())
    if peak <= 0:
        return 0, len(x)
    # above the clip's own noise floor (10th percentile frame) by 10 dB, and within 30 dB of
    # the peak; never stricter than 3 dB below the peak
    floor = float(np.percentile(e, 10))
    thr = min(max(peak * 10 ** (-_VOICED_DB_BELOW_PEAK / 10), floor * 10.0), peak * 10 ** (-0.3))
    on = np.nonzero(e >= thr)[0]
    return int(on[0] * hop), int(min(len(x), (on[-1] + 1) * hop))


# ----------------------------------------------------------------------------- ground truth
@dataclass(frozen=True)
class Occurrence:
    """One inserted keyword: voiced part from `start_s` to `end_s` of the stream."""

    keyword: str
    start_s: float
    end_s: float
    source: str = ""
    snr_db: float = float("nan")

    def to_label_line(self) -> str:
        """Audacity label-track line (start, end, label; tab separated)."""
        return f"{self.start_s:.4f}\t{self.end_s:.4f}\t{self.keyword}"

    @classmethod
    def from_label_line(cls, line: str) -> "Occurrence":
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            raise ConfigError(f"label line needs start<TAB>end<TAB>keyword: {line!r}")
        try:
            return cls(keyword=parts[2], start_s=float(parts[0]), end_s=float(parts[1]))
        except ValueError as exc:
            raise ConfigError(f"bad label line {line!r}: {exc}") from exc


@dataclass(frozen=True)
class Stream:
    """A test stream: int16 audio and its ground truth (empty for background streams)."""

    name: str
    samples: np.ndarray = field(repr=False, compare=False)
    sample_rate: int
    occurrences: tuple[Occurrence, ...] = ()
    kind: str = "positive"  # "positive" or "background"
    snr_db: Optional[float] = None
    seed: int = 0
    # background streams: (start_s, end_s, source) of each background segment
    segments: tuple[tuple[float, float, str], ...] = field(default=(), repr=False, compare=False)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def save(self, directory: Path | str) -> Path:
        """Write `<name>.wav` and `<name>.labels.txt` (Audacity format); returns the WAV path."""
        directory = Path(directory)
        wav = write_wav(directory / f"{self.name}.wav", self.samples, self.sample_rate)
        (directory / f"{self.name}.labels.txt").write_text(
            "".join(o.to_label_line() + "\n" for o in self.occurrences))
        return wav

    @classmethod
    def load(cls, wav: Path | str, sample_rate: int = 16000, kind: Optional[str] = None) -> "Stream":
        """Load a saved stream (labels beside it; no label file means keyword-free)."""
        wav = Path(wav)
        labels = wav.with_suffix(".labels.txt")
        occ: tuple[Occurrence, ...] = ()
        if labels.exists():
            occ = tuple(Occurrence.from_label_line(line) for line in labels.read_text().splitlines()
                        if line.strip())
        k = kind or ("positive" if occ else "background")
        return cls(name=wav.stem, samples=read_wav(wav, sample_rate), sample_rate=sample_rate,
                   occurrences=occ, kind=k)


# ----------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class KeywordClip:
    keyword: str
    path: Path

    @property
    def speaker(self) -> str:
        """Speech Commands speaker id (`<speaker>_nohash_<n>.wav`), else the file stem."""
        return self.path.stem.split("_nohash_")[0]


def keyword_clips(root: Path | str, keywords: Optional[Iterable[str]] = None) -> list[KeywordClip]:
    """Clips of a Speech Commands-layout folder (`root/<keyword>/*.wav`), sorted. Folders whose
    name starts with `_` (`_unknown_`, `_silence_`, `_background_noise_`) are never keywords."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"positives folder {root} does not exist")
    wanted = set(keywords) if keywords is not None else None
    out: list[KeywordClip] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if wanted is not None and d.name not in wanted:
            continue
        out.extend(KeywordClip(d.name, f) for f in sorted(d.glob("*.wav")))
    if not out:
        raise ConfigError(f"no keyword clips under {root}" + (f" for {sorted(wanted)}" if wanted else "")
                          + f" (expected Speech Commands layout: {root}/<keyword>/<clip>.wav)")
    return out


def speaker_split(clips: Sequence[KeywordClip], fraction: float, salt: str = "keywire") -> tuple[
        list[KeywordClip], list[KeywordClip]]:
    """Split clips by speaker (stable hash), `fraction` of speakers in the first part, so
    calibration and evaluation never share a voice."""
    a: list[KeywordClip] = []
    b: list[KeywordClip] = []
    for c in clips:
        h = zlib.crc32(f"{salt}:{c.speaker}".encode()) / 2 ** 32
        (a if h < fraction else b).append(c)
    return a, b


def audio_files(specs: Iterable[Path | str]) -> list[Path]:
    """WAV files named directly or found (recursively) under the given folders, sorted."""
    out: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"background {p} does not exist")
    if not out:
        raise ConfigError("no background WAV files found in " + ", ".join(str(s) for s in specs))
    return out


@lru_cache(maxsize=512)
def _cached_audio(path: str, sample_rate: int) -> np.ndarray:
    return read_wav(path, sample_rate)


class BackgroundPool:
    """Background material to draw segments from. `portion=(a, b)` restricts every file to
    that fraction of its length, so calibration (e.g. 0-0.5) and evaluation (0.5-1) streams
    never reuse the same background audio. Files are drawn by length (capped at 30 s) unless
    `weights` gives each file's share."""

    def __init__(self, files: Sequence[Path | str], sample_rate: int = 16000,
                 portion: tuple[float, float] = (0.0, 1.0), weights: Optional[Sequence[float]] = None) -> None:
        if not files:
            raise ConfigError("background pool is empty")
        if not 0.0 <= portion[0] < portion[1] <= 1.0:
            raise ConfigError(f"background portion {portion} must satisfy 0 <= a < b <= 1")
        self.files = [Path(f) for f in files]
        self.sample_rate = sample_rate
        self.portion = portion
        if weights is not None:
            if len(weights) != len(self.files) or min(weights) < 0:
                raise ConfigError("background pool weights must be one non-negative number per file")
            self._weights = np.array(weights, dtype=float)
        else:
            # Weight files by length so a 90 s noise recording is drawn more than a 1 s word,
            # but cap so long passages do not crowd out everything else.
            self._weights = np.array([min(self._length(f), 30 * sample_rate) for f in self.files], dtype=float)
        if self._weights.sum() <= 0:
            raise ConfigError("background files are all empty")
        self._weights /= self._weights.sum()

    @property
    def weights(self) -> np.ndarray:
        """Each file's share of the draws (sums to 1)."""
        return self._weights.copy()

    def audio(self, f: Path) -> np.ndarray:
        x = _cached_audio(str(f), self.sample_rate)
        a, b = (int(len(x) * p) for p in self.portion)
        return x[a:b] if len(x) >= 2 * self.sample_rate else x  # short clips are used whole

    def _length(self, f: Path) -> int:
        return len(self.audio(f))

    def segment(self, rng: np.random.Generator, max_samples: int) -> tuple[np.ndarray, str]:
        """A random piece (at most `max_samples`) of a random file, as float64, and its name."""
        f = self.files[int(rng.choice(len(self.files), p=self._weights))]
        x = self.audio(f)
        if len(x) > max_samples:
            off = int(rng.integers(0, len(x) - max_samples + 1))
            x = x[off:off + max_samples]
        return x.astype(np.float64), f"{f.parent.name}/{f.name}"


# ----------------------------------------------------------------------------- building
@dataclass(frozen=True)
class StreamConfig:
    """How streams are built. Same config + same seed + same inputs => identical streams."""

    sample_rate: int = 16000
    seed: int = 0
    snr_db: float = 10.0
    min_gap_s: float = 3.0  # silence-to-voice gap between the end of one keyword and the next
    max_gap_s: float = 9.0
    background_dbfs: float = -38.0  # nominal background level ...
    background_jitter_db: float = 6.0  # ... varied uniformly by +- this per segment
    min_segment_s: float = 2.0
    max_segment_s: float = 15.0
    stream_s: float = 600.0  # long runs are cut into streams of about this length
    lead_in_s: float = 2.0  # background before the first keyword

    def validate(self) -> None:
        if not PRE_ROLL_S + 0.6 <= self.min_gap_s <= self.max_gap_s:
            raise ConfigError(f"gap range {self.min_gap_s}-{self.max_gap_s} s is invalid (the shortest "
                              f"gap is {PRE_ROLL_S + 0.6:g} s)")
        if not 0 < self.min_segment_s <= self.max_segment_s:
            raise ConfigError("segment length range is invalid")
        if self.stream_s <= 0 or self.sample_rate <= 0:
            raise ConfigError("stream_s and sample_rate must be positive")

    def with_(self, **changes: object) -> "StreamConfig":
        c = dataclasses.replace(self, **changes)
        c.validate()
        return c


def _sub_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def background_bed(pool: BackgroundPool, n_samples: int, rng: np.random.Generator,
                   config: StreamConfig, segments: Optional[list] = None) -> np.ndarray:
    """`n_samples` of background (float64): random segments at random levels, cross-faded.
    With `segments`, appends (start_s, end_s, source) per segment, for attributing false
    accepts (source: the file, or the folder when short clips are strung together)."""
    sr = config.sample_rate
    fade = max(1, int(_FADE_S * sr))
    out = np.zeros(n_samples + fade, dtype=np.float64)
    pos = 0
    ramp = np.linspace(0.0, 1.0, fade)
    while pos < n_samples:
        want = int(rng.uniform(config.min_segment_s, config.max_segment_s) * sr)
        seg, source = pool.segment(rng, want)
        # short files (1 s words) are strung together until the segment is long enough
        pieces = [seg]
        sources = [source]
        total = len(seg)
        while total < want:
            s, source = pool.segment(rng, want - total)
            pieces.append(s)
            sources.append(source)
            total += len(s)
        seg = np.concatenate(pieces)[:want]
        level = config.background_dbfs + rng.uniform(-config.background_jitter_db, config.background_jitter_db)
        r = np.sqrt(np.mean(seg * seg)) if len(seg) else 0.0
        if r > 1.0:  # digital silence stays silent
            seg = seg * (32768.0 * 10 ** (level / 20) / r)
        seg = seg.copy()
        if len(seg) > 2 * fade:
            seg[:fade] *= ramp
            seg[-fade:] *= ramp[::-1]
        end = min(len(out), pos + len(seg))
        out[pos:end] += seg[: end - pos]
        if segments is not None and pos < n_samples:
            folders = {src.split("/")[0] for src in sources}
            label = sources[0] if len(sources) == 1 else (folders.pop() + "/*" if len(folders) == 1 else "mixed")
            segments.append((pos / sr, min(end, n_samples) / sr, label))
        pos += max(1, len(seg) - fade)
    return out[:n_samples]


def add_at_snr(mix: np.ndarray, bed: np.ndarray, clip: np.ndarray, span: tuple[int, int], at: int,
               snr_db: float, floor: float, sample_rate: int = 16000) -> float:
    """Add `clip` onto `mix` (float64, in place) with its voiced part `span` starting at sample
    `at`, scaled so that the voiced part's RMS is `snr_db` above the RMS of `bed` under it
    (voiced part +- 0.5 s; never below `floor`). Returns the gain. Streams and the training
    augmentation that imitates them mix keywords with this one rule."""
    v0, v1 = span
    n = len(mix)
    voiced = clip[v0:v1].astype(np.float64)
    kr = float(np.sqrt(np.mean(voiced * voiced))) if len(voiced) else 0.0
    pad = int(0.5 * sample_rate)
    lo, hi = max(0, at - pad), min(n, at + (v1 - v0) + pad)
    br = max(floor, float(np.sqrt(np.mean(bed[lo:hi] ** 2))) if hi > lo else 0.0)
    gain = (br * 10 ** (snr_db / 20) / kr) if kr > 0 else 0.0
    p = at - v0  # clip start so that its voiced part begins at `at`
    s0, e0 = max(0, p), min(n, p + len(clip))
    if e0 > s0:
        mix[s0:e0] += clip[s0 - p:e0 - p].astype(np.float64) * gain
    return gain


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def build_positive_streams(clips: Sequence[KeywordClip], pool: BackgroundPool, config: StreamConfig,
                           name: str = "pos") -> list[Stream]:
    """Streams holding every clip once, in random order at random gaps, mixed at `config.snr_db`.

    The order, gaps and background depend only on the seed and the spacing, never on the SNR,
    so streams at several SNRs differ only in the keyword level."""
    config.validate()
    if not clips:
        raise ConfigError("no keyword clips to insert")
    rng = np.random.default_rng(_sub_seed(config.seed, "order", len(clips)))
    order = [clips[i] for i in rng.permutation(len(clips))]
    # cut into streams of about stream_s (estimate ~1 s per clip + mean gap)
    per_clip = 1.0 + (config.min_gap_s + config.max_gap_s) / 2
    per_stream = max(1, int(config.stream_s / per_clip))
    streams = []
    for k, start in enumerate(range(0, len(order), per_stream)):
        streams.append(_positive_stream(order[start:start + per_stream], pool, config,
                                        f"{name}_snr{config.snr_db:g}_{k:03d}", k))
    return streams


def _positive_stream(clips: Sequence[KeywordClip], pool: BackgroundPool, config: StreamConfig,
                     name: str, index: int) -> Stream:
    """One positive stream built from *tiles*, one per keyword: `PRE_ROLL_S` of background,
    the voiced part, then the rest of the gap. Each tile's background comes from its own
    seed and is prefix-stable (a longer tile only adds audio at its end), so the background
    under and just before every keyword, and with it the keyword's gain, is the same whatever
    the spacing: changing only the gaps changes only the spacing."""
    sr = config.sample_rate
    rng = np.random.default_rng(_sub_seed(config.seed, "layout", index, config.min_gap_s, config.max_gap_s))
    group = name.split("_snr")[0]
    audio = [_cached_audio(str(c.path), sr) for c in clips]
    spans = [voiced_span(a, sr) for a in audio]
    pre = int(PRE_ROLL_S * sr)
    lead = int(config.lead_in_s * sr)
    beds = [background_bed(pool, lead, np.random.default_rng(_sub_seed(config.seed, "lead", group, index)), config)]
    starts = []  # voiced start of each keyword, absolute samples
    pos = lead
    fade = max(1, int(_FADE_S * sr))
    ramp = np.linspace(0.0, 1.0, fade)
    for k, (a, (v0, v1)) in enumerate(zip(audio, spans)):
        gap = int(rng.uniform(config.min_gap_s, config.max_gap_s) * sr)
        n = pre + (v1 - v0) + (gap - pre)
        tile_rng = np.random.default_rng(_sub_seed(config.seed, "tile", group, index, k, clips[k].path.name))
        tile = background_bed(pool, n, tile_rng, config)
        tile[:fade] *= ramp
        tile[-fade:] *= ramp[::-1]
        beds.append(tile)
        starts.append(pos + pre)
        pos += n
    bed = np.concatenate(beds)
    mix = bed.copy()
    occ = []
    floor = 32768.0 * 10 ** ((config.background_dbfs - 30.0) / 20)
    for c, a, span, vstart in zip(clips, audio, spans, starts):
        add_at_snr(mix, bed, a, span, vstart, config.snr_db, floor, sr)
        v0, v1 = span
        occ.append(Occurrence(c.keyword, vstart / sr, (vstart + v1 - v0) / sr, source=f"{c.keyword}/{c.path.name}",
                              snr_db=config.snr_db))
    return Stream(name=name, samples=_to_int16(mix), sample_rate=sr, occurrences=tuple(occ),
                  kind="positive", snr_db=config.snr_db, seed=config.seed)


def build_background_streams(pool: BackgroundPool, hours: float, config: StreamConfig,
                             name: str = "bg") -> list[Stream]:
    """Keyword-free streams totalling `hours` of background, for false accepts per hour."""
    config.validate()
    if hours <= 0:
        raise ConfigError(f"--hours must be positive, got {hours}")
    total = int(round(hours * 3600 * config.sample_rate))
    per = int(config.stream_s * config.sample_rate)
    out = []
    for k, start in enumerate(range(0, total, per)):
        n = min(per, total - start)
        rng = np.random.default_rng(_sub_seed(config.seed, "background", k))
        segs: list = []
        bed = background_bed(pool, n, rng, config, segs)
        out.append(Stream(name=f"{name}_{k:03d}", samples=_to_int16(bed), sample_rate=config.sample_rate,
                          kind="background", seed=config.seed, segments=tuple(segs)))
    return out


# ----------------------------------------------------------------------------- manifests
def save_streams(streams: Sequence[Stream], directory: Path | str, config: Optional[StreamConfig] = None) -> Path:
    """Save streams (WAV + labels) and a `streams.json` manifest; returns the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in streams:
        wav = s.save(directory)
        entries.append({"wav": wav.name, "kind": s.kind, "snr_db": s.snr_db, "seed": s.seed,
                        "duration_s": round(s.duration_s, 4), "occurrences": len(s.occurrences),
                        "sources": [o.source for o in s.occurrences]})
    manifest = directory / "streams.json"
    manifest.write_text(json.dumps({"config": dataclasses.asdict(config) if config else None,
                                    "streams": entries}, indent=1))
    return manifest


def load_streams(directory: Path | str, sample_rate: int = 16000) -> list[Stream]:
    """Load streams saved by `save_streams` (or any folder of WAV + optional label files)."""
    directory = Path(directory)
    manifest = directory / "streams.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        out = []
        for e in data["streams"]:
            s = Stream.load(directory / e["wav"], sample_rate, kind=e["kind"])
            out.append(dataclasses.replace(s, snr_db=e.get("snr_db"), seed=e.get("seed", 0)))
        return out
    wavs = sorted(directory.glob("*.wav"))
    if not wavs:
        raise ConfigError(f"no streams in {directory}")
    return [Stream.load(w, sample_rate) for w in wavs]


def keywords_in_text(text: str, keywords: Iterable[str]) -> list[str]:
    """Keywords that occur as whole words in `text` (background speech must not contain them)."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    return sorted(k for k in keywords if k.lower() in words)
