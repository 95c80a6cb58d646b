"""`keywire wakeword WORD[,WORD...] --out DIR`: a custom wake word in one command.

Synthetic positives from every TTS voice, confusable real words and keyword-free speech as
negatives, a speech-embedding head, thresholds calibrated to a false-accept target; writes
`DIR/<WORD>.tflite` (one model holding every word) and a report. The engine is
`keywire.training.wakeword`; TensorFlow is imported only there.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated


def wakeword(
    words: Annotated[str, typer.Argument(help="Wake word(s), comma separated; one model holds them all.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <WORD>.tflite and the report.")],
    target_fa_per_hour: Annotated[float, typer.Option(help="False accepts per hour to calibrate for.")] = 0.5,
    data: Annotated[Optional[List[Path]], typer.Option(
        help="Real recordings in Speech Commands layout (repeatable): keyword folders named like the words.")] = None,
    background: Annotated[Optional[List[Path]], typer.Option(
        help="Real keyword-free speech, WAV files or folders (repeatable): training and calibration.")] = None,
    background_holdout: Annotated[float, typer.Option(
        help="Share of the --background speakers kept out of training and used only to calibrate "
             "(0 = train and calibrate on all of it).")] = 0.25,
    background_max_hours: Annotated[float, typer.Option(
        help="Use at most this many hours of --background, drawn at random (0 = all); each hour adds about "
             "0.4 GB of memory and 30 CPU-seconds.")] = 2.0,
    voices: Annotated[str, typer.Option(help="Voices as for `dataset synth --voices` (default: every voice).")] = "",
    max_voices: Annotated[int, typer.Option(help="Use at most this many voices (0 = all).")] = 0,
    per_word: Annotated[int, typer.Option(help="Synthetic clips per wake word.")] = 600,
    confusables: Annotated[int, typer.Option(help="Confusable real words per wake word.")] = 24,
    common_words: Annotated[int, typer.Option(help="Other common words as negatives.")] = 16,
    per_negative: Annotated[int, typer.Option(help="Clips per negative word.")] = 16,
    speech_sentences: Annotated[int, typer.Option(help="Sentences of keyword-free training speech.")] = 150,
    calibration_sentences: Annotated[int, typer.Option(help="Sentences of keyword-free calibration speech.")] = 200,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    copies: Annotated[int, typer.Option(help="Augmented stream-like windows per training clip.")] = 2,
    hard_negatives: Annotated[float, typer.Option(
        help="Train twice: the second time, moments of the keyword-free training speech that the first "
             "head scored at least this probability for a wake word are negatives (0 = train once).")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel TTS processes.")] = 2,
    cache: Annotated[Optional[Path], typer.Option(help="Embedding cache folder.", envvar="KEYWIRE_CACHE")] = None,
    work: Annotated[Optional[Path], typer.Option(help="Keep intermediate files (clips, speech, model run) here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Build a custom wake word from synthetic speech alone (no recordings needed)."""
    from keywire.training.synth import parse_words
    from keywire.protocol.errors import ConfigError

    try:
        word_list = parse_words(words)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--words is empty", "the word list is empty")) from None
    from .cmd_train import _native_quiet, _quiet_tf

    _quiet_tf()
    from keywire.training.wakeword import WakewordSpec, build_wakeword

    spec = WakewordSpec(
        words=word_list, out=out, target_fa_per_hour=target_fa_per_hour, voices=tuple(
            v.strip() for v in voices.split(",") if v.strip()), max_voices=max_voices, per_word=per_word,
        confusables=confusables, common_words=common_words, per_negative=per_negative,
        salad_sentences=speech_sentences, calibration_sentences=calibration_sentences, epochs=epochs,
        copies=copies, hard_negatives=hard_negatives, data=tuple(data or ()), background=tuple(background or ()),
        background_holdout=background_holdout, background_max_hours=background_max_hours,
        seed=seed, jobs=jobs,
        cache=cache, work=work)
    say = (lambda m: None) if quiet else (lambda m: typer.echo(m, err=True))
    with _native_quiet():
        result = build_wakeword(spec, say)
    cal = result.report["calibration"]
    typer.echo(f"wrote {result.model_path} and {result.report_md} in {result.seconds / 60:.1f} min")
    for k, v in cal["keywords"].items():
        found = "n/a" if v["frr"] is None else f"{(1 - v['frr']) * 100:.1f}%"
        typer.echo(f"{k}: threshold {v['threshold']}, held-out voices found {found}, "
                   f"{v['fa_per_hour']:.2f} false accepts/hour on {cal['hours'] * 60:.0f} min of keyword-free speech")


def register(app: typer.Typer) -> None:
    app.command("wakeword")(wakeword)
