"""`keywire wakeword`: a custom wake word in one command, from synthetic speech alone.

Steps, each timed in the report:
1. voices: every TTS voice on the machine (espeak-ng accents x variants, flite), or `voices`;
2. words: positives spoken by every voice with varied rate and pitch; negatives that are real
   confusable words from the CMU Pronouncing Dictionary (`confusables`) and common words;
3. keyword-free speech: word salad read by the voices (training babble and `_unknown_`
   windows), a second salad with another seed for calibration, plus the user's `background`
   (recordings of the wake word itself left out; a quarter of its speakers calibration-only);
4. a speech-embedding head (`train.train`, stream-like windows: the word sits in noise and
   other speech, never digital silence), one model holding every word, trained twice: the
   second time with the moments where the first fired on the keyword-free training speech
   as negatives (`hard_negatives`);
5. calibration (`calibrate.calibrate`) to `target_fa_per_hour` on keyword-free speech, with
   positive streams of voices the head never trained on (the recipe's test split);
6. `<out>/<word>.tflite` and a report (`report.json`, `report.md`, `plots/`).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from keywire.protocol.errors import ConfigError, FileAccessError

from .confusables import Confusable, phrase_confusables, speakable_or_raise
from .synth import SynthConfig, normalize_word, render_clip, ClipJob, synthesize_dataset, synthesize_passages
from .synth_voices import TTSEngineError, Voice, VoiceCatalog
from .synth_words import COMMON_WORDS, word_salad

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WakewordSpec:
    """What to build and how much of it (the defaults fit about 15 minutes on 2 cores)."""

    words: tuple[str, ...]
    out: Path
    target_fa_per_hour: float = 0.5
    voices: tuple[str, ...] = ()          # voice specs as `dataset synth --voices`; () = every voice
    max_voices: int = 0                   # 0 = all of them
    per_word: int = 600                   # positive clips per wake word
    confusables: int = 24                 # confusable real words per wake word
    common_words: int = 16                # other common words as negatives
    per_negative: int = 16                # clips per negative word
    salad_sentences: int = 150            # training keyword-free speech (about 8 minutes)
    calibration_sentences: int = 200      # calibration keyword-free speech (another seed)
    epochs: int = 30
    copies: int = 2                       # augmented stream-like windows per training clip
    embedding_frames: int = 16
    hard_negatives: float = 0.3           # train twice, the second time with the moments of the
                                          # keyword-free training speech where the first head
                                          # gave a wake word this probability (0 = once)
    data: tuple[Path, ...] = ()           # real recordings, Speech Commands layout
    background: tuple[Path, ...] = ()     # real keyword-free speech (WAV files or folders)
    background_holdout: float = 0.25      # share of its speakers kept out of training, for
                                          # calibration only (0 = train and calibrate on all of it)
    background_max_hours: float = 2.0     # at most this much of it, drawn at random (0 = all): each
                                          # hour costs about 0.4 GB and 30 CPU-s of the build
    seed: int = 0
    jobs: int = 2
    cache: Optional[Path] = None          # embedding cache root (default: keywire's cache)
    work: Optional[Path] = None           # keep intermediate files here (default: a temp dir)

    def validate(self) -> None:
        if not self.words:
            raise ConfigError("the word list is empty: name at least one wake word")
        for w in self.words:
            normalize_word(w)
            speakable_or_raise(w)
        if not 0 <= self.hard_negatives < 1:
            raise ConfigError(f"--hard-negatives must be within 0..1 (0 = off), got {self.hard_negatives}")
        if not 0 <= self.background_holdout < 1:
            raise ConfigError(f"--background-holdout must be within 0..1, got {self.background_holdout}")
        if not self.background_max_hours >= 0:
            raise ConfigError(f"--background-max-hours must be 0 (all) or more, got {self.background_max_hours}")
        if not self.target_fa_per_hour > 0:
            raise ConfigError(f"--target-fa-per-hour must be positive, got {self.target_fa_per_hour}")
        for name in ("per_word", "epochs", "per_negative", "jobs", "salad_sentences", "calibration_sentences"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("confusables", "common_words", "max_voices", "copies"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        for d in self.data:
            if not Path(d).is_dir():
                raise ConfigError(f"--data {d} is not a folder")
        for b in self.background:
            if not Path(b).exists():
                raise ConfigError(f"--background {b} does not exist")

    @property
    def name(self) -> str:
        return normalize_word(self.words[0])


@dataclass
class WakewordResult:
    model_path: Path
    report: dict[str, Any]
    report_md: Path
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)


def check_out_dir(out: Path) -> None:
    """Create `out` and prove it writable before minutes of work (`FileAccessError` otherwise)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".keywire-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FileAccessError(f"--out {out} is not writable: {exc.strerror or exc}") from None


def pick_voices(catalog: VoiceCatalog, specs: Sequence[str], max_voices: int, seed: int) -> list[Voice]:
    """The voices to use: all (or `specs`), thinned to `max_voices` spread over accents and engines."""
    voices = catalog.resolve(specs)
    if max_voices and len(voices) > max_voices:
        rng = random.Random(f"{seed}|voices")
        voices = sorted(rng.sample(voices, max_voices), key=lambda v: v.spec)
    return voices


def check_speakable(words: Sequence[str], voices: Sequence[Voice]) -> None:
    """Render each word once with the first voice: `TTSEngineError` naming a word it cannot say."""
    with tempfile.TemporaryDirectory(prefix="keywire-wakeword-") as tmp:
        params = {"tempo": 1.0, "peak_dbfs": -3.0, "jitter": 0.0, "speed_wpm": 160, "pitch": 50}
        for w in words:
            try:
                render_clip(ClipJob(w, normalize_word(w), voices[0], Path(tmp) / "probe.wav", params), 16000, 2.0, 0.0)
            except TTSEngineError as exc:
                raise TTSEngineError(f"the TTS voices cannot speak {w!r}: {exc}") from None


def _salad_words(forbidden: Sequence[str]) -> tuple[str, ...]:
    bad = {p for w in forbidden for p in w.lower().split()}
    return tuple(w for w in COMMON_WORDS if w not in bad)


def build_wakeword(spec: WakewordSpec, progress: Optional[Progress] = None) -> WakewordResult:
    """Everything from the word list to the calibrated model and its report."""
    say = progress or (lambda m: None)
    t_start = time.monotonic()
    stages: dict[str, float] = {}
    mark = [time.monotonic()]

    def stage(name: str) -> None:
        now = time.monotonic()
        stages[name] = round(now - mark[0], 1)
        mark[0] = now

    spec.validate()
    check_out_dir(spec.out)
    words = tuple(" ".join(w.lower().split()) for w in spec.words)
    real_speech, left_out = keyword_free_background(spec.background, words)
    real_speech, over_cap = cap_background(real_speech, spec.background_max_hours, spec.seed)
    background = Background(real_speech, left_out, over_cap)
    catalog = VoiceCatalog.probe()
    voices = pick_voices(catalog, spec.voices, spec.max_voices, spec.seed)
    check_speakable(words, voices)
    if left_out:
        say(f"--background: left out {left_out} recordings of the wake word itself (Speech Commands folders)")
    if over_cap:
        say(f"--background: using {len(real_speech)} of {len(real_speech) + over_cap} recordings, drawn at random "
            f"(--background-max-hours {spec.background_max_hours:g})")
    say(f"{len(voices)} voices; finding confusable words")
    conf: dict[str, list[Confusable]] = {w: phrase_confusables(w, spec.confusables) if spec.confusables else []
                                         for w in words}
    negatives = _negative_words(words, conf)
    stage("confusables")
    tmp = None
    if spec.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="keywire-wakeword-")
        work = Path(tmp.name)
    else:
        work = spec.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        return _build(spec, words, voices, conf, negatives, background, work, say, stages, stage, t_start)
    finally:
        if tmp is not None:
            tmp.cleanup()


@dataclass(frozen=True)
class Background:
    """The user's keyword-free recordings a build uses, and how many it left out and why."""

    files: list[Path]
    left_out_wake_word: int           # recordings of the wake word itself (Speech Commands layout)
    left_out_over_max_hours: int      # beyond `--background-max-hours`


@dataclass(frozen=True)
class SpeechFiles:
    folder: Path
    seconds: float


def read_aloud(folder: Path, texts: Sequence[str], voices: Sequence[str], seed: int, forbidden: Sequence[str],
               jobs: int) -> SpeechFiles:
    """Keyword-free speech: `texts` read by the voices into `jobs` WAV files in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    parts = [tuple(texts[i::jobs]) for i in range(jobs) if texts[i::jobs]]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        results = list(pool.map(lambda ip: synthesize_passages(folder / f"part{ip[0]}.wav", ip[1], voices,
                                                               seed=seed * 100 + ip[0], forbidden=forbidden),
                                enumerate(parts)))
    return SpeechFiles(folder, sum(r.seconds for r in results))


def _negative_words(words: Sequence[str], conf: dict[str, list[Confusable]]) -> list[str]:
    """Confusables of every word that are not themselves one of the wake words (or a homophone
    espeak-ng says the same way)."""
    from .synth_negatives import phonemes

    cands = list(dict.fromkeys(c.word for w in words for c in conf[w] if c.word not in words))
    ph = phonemes(list(words) + cands)
    kw_ph = set(ph[:len(words)])
    return [c for c, p in zip(cands, ph[len(words):]) if p not in kw_ph]


def _build(spec: WakewordSpec, words: tuple[str, ...], voices: list[Voice], conf: dict[str, list[Confusable]],
           negatives: list[str], background: Background, work: Path, say: Progress, stages: dict[str, float],
           stage: Callable[[str], None], t_start: float) -> WakewordResult:
    specs = tuple(v.spec for v in voices)
    synth_dir = work / "synth"
    last = [0.0]

    def tick(i: int, n: int) -> None:
        if time.monotonic() - last[0] > 15 or i == n:
            last[0] = time.monotonic()
            say(f"speaking: {i}/{n} clips")

    rep = synthesize_dataset(SynthConfig(words=words, out=synth_dir, per_word=spec.per_word,
                                         per_negative=spec.per_negative, negatives=tuple(negatives),
                                         near_misses=0, common_negatives=spec.common_words, voices=specs,
                                         seed=spec.seed, jobs=spec.jobs), tick, catalog=None)
    for w in words:
        if rep.counts.get(normalize_word(w), 0) == 0:
            raise TTSEngineError(f"the TTS voices cannot speak {w!r}: {rep.failures[0] if rep.failures else 'no clip'}")
    stage("speak words")
    salad_words = _salad_words(words)
    say(f"reading {spec.salad_sentences + spec.calibration_sentences} sentences of keyword-free speech")
    train_speech = read_aloud(work / "speech_train", word_salad(spec.salad_sentences, spec.seed, salad_words),
                              specs, spec.seed, words, spec.jobs)
    calib_speech = read_aloud(work / "speech_calibration",
                              word_salad(spec.calibration_sentences, spec.seed + 1000, salad_words),
                              specs, spec.seed + 1000, words, spec.jobs)
    noise_dir = make_noise(work / "noise", spec.seed)
    stage("speak keyword-free speech")
    real_train, real_calib = split_background(background.files, spec.background_holdout, spec.seed)
    recipe = wakeword_recipe(spec, words, synth_dir, train_speech.folder, real_train, noise_dir)
    from .dataset import load_dataset
    from .train import train

    dataset = load_dataset(recipe)
    say(f"training a speech-embedding head on {sum(len(c) for c in dataset.clips.values())} clips")
    result = train(recipe, work / "model", cache_root=spec.cache, progress=say, dataset=dataset, verbose=0)
    stage("train")
    say("calibrating thresholds on keyword-free speech")
    backgrounds = [calib_speech.folder, *real_calib]
    cal, stream_report = calibrate_head(result.tflite_path, dataset, words, backgrounds,
                                        spec.target_fa_per_hour, spec.seed, work / "calibration_positives")
    from .calibrate import apply_calibration

    model_path = spec.out / f"{spec.name}.tflite"
    model_path.write_bytes(apply_calibration(result.tflite_path.read_bytes(), cal))
    stage("calibrate")
    plots = spec.out / "plots"
    plots.mkdir(exist_ok=True)
    shutil.copyfile(result.model_dir / "history.png", plots / "history.png")
    from .stream_eval import plot_det

    plot_det(stream_report.conditions, plots / "det.png", title=f"{spec.name}: held-out voices, 10 dB")
    (spec.out / "recipe.toml").write_text(recipe.to_toml())
    seconds = time.monotonic() - t_start
    report = {
        "model": model_path.name, "words": list(words), "classes": list(recipe.classes),
        "seconds": round(seconds, 1), "stages_s": dict(stages),
        "voices": {"count": len(voices), "specs": list(specs)},
        "confusables": {w: [asdict(c) for c in conf[w]] for w in words},
        "negatives_spoken": sorted(k for k in rep.counts if k not in {normalize_word(w) for w in words}),
        "clips": rep.counts, "synthesis_failures": len(rep.failures),
        "keyword_free_speech_s": {"train": round(train_speech.seconds, 1),
                                  "calibration": round(calib_speech.seconds, 1)},
        "real_data": [str(d) for d in spec.data], "real_background": [str(b) for b in spec.background],
        "real_background_files": {"used": len(background.files), "training": len(real_train),
                                  "calibration": len(real_calib), "left_out_wake_word": background.left_out_wake_word,
                                  "left_out_over_max_hours": background.left_out_over_max_hours},
        "training": {k: result.report[k] for k in ("validation", "test", "parameters", "tflite_bytes", "hard_negatives",
                                                   "training_seconds", "warnings") if k in result.report},
        "calibration": cal.to_dict(),
        "held_out_streams": stream_report.to_dict(),
        "target_fa_per_hour": spec.target_fa_per_hour,
    }
    (spec.out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    md = spec.out / "report.md"
    md.write_text(report_markdown(report))
    return WakewordResult(model_path, report, md, seconds, stages)


def make_noise(folder: Path, seed: int, seconds: int = 60) -> Path:
    """Room-like noise recordings (white, pink, brown; sox) for `_silence_` and the context
    around each training word, so no window holds digital silence even without the user's own."""
    from .synth_voices import first_line, run_tool

    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(("whitenoise", "pinknoise", "brownnoise")):
        out = folder / f"{colour}.wav"
        r = run_tool(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", str(seconds),
                      colour, "gain", "-n", str(-12 - 6 * i)])
        if r.returncode != 0:
            raise TTSEngineError(f"sox could not make noise: {first_line(r.stderr)}")
    return folder


def keyword_free_background(paths: Sequence[Path], words: Sequence[str]) -> tuple[list[Path], int]:
    """The recordings under the user's `--background` paths (folders searched recursively),
    less those that are the wake word itself in Speech Commands layout (`<word>/*.wav`,
    `_unknown_/<word>_*.wav`), so recordings in Speech Commands layout serve as keyword-free
    speech as they are. Returns the files and how many were left out."""
    from .streams import audio_files

    if not paths:
        return [], 0
    keys = {normalize_word(w) for w in words}
    files = audio_files(paths)
    kept = [f for f in files if not _is_wake_word_clip(f, keys)]
    if not kept:
        raise ConfigError("every --background recording is a recording of the wake word itself: "
                          "give keyword-free speech")
    return kept, len(files) - len(kept)


def cap_background(files: Sequence[Path], max_hours: float, seed: int) -> tuple[list[Path], int]:
    """At most `max_hours` of the `--background` recordings, drawn at random (seeded), so a whole
    downloaded corpus stays inside the build's time and memory: every hour of it costs about
    0.4 GB and 30 CPU-s, and Speech Commands holds 29 hours. Only the drawn files' WAV headers
    are read. Returns the files (in their given order) and how many were left out."""
    from keywire.agent.audio_io import WavReader

    if max_hours <= 0:
        return list(files), 0
    budget, kept = max_hours * 3600.0, set()
    # keyed by folder and file name, not the whole path: the same tree draws the same files anywhere
    for f in sorted(files, key=lambda f: hashlib.sha1(f"{seed}:{f.parent.name}/{f.name}".encode()).hexdigest()):
        if budget <= 0:
            break
        with WavReader(f) as r:
            budget -= r.format.duration_s
        kept.add(f)
    return [f for f in files if f in kept], len(files) - len(kept)


def split_background(files: Sequence[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(training, calibration) recordings of the user's keyword-free speech. With `holdout` > 0
    that share of the speakers is calibration only, so thresholds are set on speech the head
    never trained on; a speaker is the id of a Speech Commands name (`SPEAKER_nohash_N`), else
    the recording's folder when there are several, else the recording. With 0, or fewer than
    two speakers, every recording serves both."""
    from .dataset import speaker_of

    several = len({f.parent for f in files}) > 1
    speaker = {f: speaker_of(f.name) if "_nohash_" in f.name else str(f.parent if several else f) for f in files}
    order = sorted(set(speaker.values()), key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
    if holdout <= 0 or len(order) < 2:
        return list(files), list(files)
    held = set(order[:min(len(order) - 1, max(1, round(holdout * len(order))))])
    return [f for f in files if speaker[f] not in held], [f for f in files if speaker[f] in held]


def _is_wake_word_clip(f: Path, keys: set[str]) -> bool:
    if f.parent.name.lower() in keys:
        return True
    if f.parent.name == "_unknown_" and "_nohash_" in f.name:   # <word>_<speaker>_nohash_<n>.wav
        word, sep, _speaker = f.name.lower().split("_nohash_")[0].rpartition("_")
        return bool(sep) and word in keys
    return False


def wakeword_recipe(spec: WakewordSpec, words: Sequence[str], synth_dir: Path, speech: Path,
                    real_speech: Sequence[Path], noise: Path):
    """The speech-embedding recipe of a wake word: synthetic (and real) clips, keyword-free
    speech (read by the voices, and the user's own) as babble and `_unknown_` windows,
    stream-like training windows."""
    from .recipe import from_dict

    return from_dict({
        "name": spec.name, "description": f"wake word {', '.join(words)} (keywire wakeword)",
        "keywords": [normalize_word(w) for w in words],
        "data": [str(synth_dir)] + [str(d) for d in spec.data],
        "background_noise": [str(noise)],
        "background_speech": [str(speech)] + [str(f) for f in real_speech],
        "speech_unknown_percentage": 40.0, "unknown_class_percentage": 100.0, "silence_class_percentage": 30.0,
        "hard_negative_probability": spec.hard_negatives,
        "validation_percentage": 10.0, "testing_percentage": 15.0, "split_salt": "keywire-wakeword",
        "model": "embedding_conv", "model_options": {"filters": 64, "units": 64, "dropout": 0.3},
        "embedding_frames": spec.embedding_frames, "epochs": spec.epochs, "batch_size": 64,
        "learning_rate": 0.003, "warmup_epochs": 1, "early_stopping_patience": 0, "weight_averaging": 0.0,
        "seed": spec.seed + 1, "frontend": {"type": "speech_embedding"},
        "augmentation": {"copies": spec.copies, "noise_dbfs": [-60.0, -30.0], "noise_probability": 0.8,
                         "babble_probability": 0.5, "stream_probability": 0.5},
        "detection": {"detection_threshold": 180, "minimum_count": 2, "average_window_duration_ms": 400,
                      "suppression_ms": 1500},
    }, source="wakeword")


def calibrate_head(model_path: Path, dataset, words: Sequence[str], backgrounds: Sequence[Path],
                   target: float, seed: int, pos_dir: Path):
    """Thresholds for `target` false accepts per hour on the keyword-free `backgrounds`, with
    positive streams (10 dB) of the test split's voices; the shipped settings' stream figures."""
    from keywire.agent.model import KeywordModel

    from . import calibrate as cb
    from . import stream_eval as se
    from . import streams as st

    keys = {normalize_word(w) for w in words}
    clips = [st.KeywordClip(c.label, Path(c.path)) for split in ("test", "validation")
             for c in dataset.clips[split] if c.label in keys and not c.is_generated]
    if not clips:
        raise ConfigError("no voice is held out for calibration: use more voices (--max-voices)")
    m = KeywordModel.load(model_path)
    rate = m.frontend.sample_rate_hz
    pool = st.BackgroundPool(st.audio_files(backgrounds), rate)
    hours = max(0.05, sum(len(pool.audio(f)) for f in pool.files) / rate / 3600.0)
    plan = se.EvalPlan(snr_db=(10.0,), hours=hours, spacing_check=(),
                       stream=st.StreamConfig(sample_rate=rate, seed=seed + 1))
    sset = se.build_stream_set(clips, pool, plan)
    bg, pos, _, _ = se.score_stream_set(m, sset)
    spec = cb.CalibrationSpec(target_fa_per_hour=target)
    spec.validate()
    cal = cb.calibrate(list(bg) + [t for ts in pos.values() for t in ts], m.classes, m.detection, spec)
    return cal, se.report_from_traces(m, bg, pos, cal.detection, plan)


def allowed_false_accepts(cal: dict[str, Any]) -> int:
    """How many false accepts per word the calibration speech allows at the target: with none,
    a threshold is set by the single highest-scoring moment of that speech."""
    from .calibrate import allowed_false_accepts as allowed

    return allowed(cal["budget_fa_per_hour_per_keyword"], cal["hours"])


def report_markdown(r: dict[str, Any]) -> str:
    """The report for people: what was built from what, and its figures."""
    cal = r["calibration"]
    lines = [f"# Wake word: {', '.join(r['words'])}", "",
             f"Model `{r['model']}` (classes {', '.join(r['classes'])}), built in {r['seconds'] / 60:.1f} min "
             f"from synthetic speech of {r['voices']['count']} TTS voices"
             + (f" and real recordings in {', '.join(r['real_data'])}" if r["real_data"] else "") + ".", ""]
    bgf = r.get("real_background_files") or {}
    if bgf.get("used"):
        capped = (f"; {bgf['left_out_over_max_hours']} more left out by --background-max-hours"
                  if bgf.get("left_out_over_max_hours") else "")
        lines += [f"Real keyword-free speech: {bgf['used']} recordings ({bgf['training']} trained on, "
                  f"{bgf['calibration']} in calibration; {bgf['left_out_wake_word']} recordings of the wake "
                  f"word itself left out{capped}).", ""]
    lines += ["| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["stages_s"].items()]
    lines += ["", "## Confusable words (negatives)", ""]
    for w, cs in r["confusables"].items():
        lines.append(f"- **{w}**: " + ", ".join(f"{c['word']} ({c['why']})" for c in cs))
    lines += ["", "## Figures", ""]
    for split in ("validation", "test"):
        ev = r["training"].get(split)
        if ev:
            lines.append(f"- {split} clips of voices never trained on: {ev['accuracy'] * 100:.1f}% of {ev['n']} "
                         f"(int8 model through the agent)")
    mined = r["training"].get("hard_negatives")
    if mined:
        again = "; the model was trained again with them as negatives" if mined["events"] else ""
        lines.append(f"- hard negatives: the first head fired {mined['events']} times in "
                     f"{mined['stream_hours'] * 60:.0f} min of keyword-free training speech{again}")
    p = cal["params"]
    lines.append(f"- calibrated for {r['target_fa_per_hour']} false accepts/hour on "
                 f"{cal['hours'] * 60:.0f} min of keyword-free speech: thresholds {p['detection_threshold_list']}, "
                 f"window {p['average_window_duration_ms']} ms, minimum count {p['minimum_count']}")
    for k, v in cal["keywords"].items():
        frr = "n/a" if v["frr"] is None else f"{(1 - v['frr']) * 100:.1f}%"
        lines.append(f"- {k}: threshold {v['threshold']}, held-out voices found in 10 dB streams {frr}, "
                     f"false accepts/hour on the calibration speech {v['fa_per_hour']:.2f}")
    if allowed_false_accepts(cal) == 0:
        lines.append("- at this target the calibration speech allows no false accept at all, so each threshold "
                     "sits just above the highest score its word got anywhere in that speech and moves from "
                     "build to build; calibrating on your own keyword-free speech as well (`--background`, or "
                     "`keywire calibrate` later) sets thresholds on the speech the model will hear")
    lines += ["", "These figures come from synthetic voices and speech. Measure real speakers with",
              "`keywire evaluate-stream MODEL --positives DIR --background DIR` before relying on them.", "",
              "Plots: `plots/history.png` (training), `plots/det.png` (misses against false accepts)."]
    return "\n".join(lines) + "\n"
