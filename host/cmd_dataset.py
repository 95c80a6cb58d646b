"""`keywire dataset ...`: get training data, real (Speech Commands) or synthetic (TTS).

Thin commands: options in, one engine call (`keywire.training.download`,
`keywire.training.synth`); failures are reported by `keywire.host.cli.main`.
No TensorFlow is imported.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from keywire.protocol.errors import ConfigError

dataset_app = typer.Typer(name="dataset", help="Download Speech Commands or synthesize keyword datasets.",
                          no_args_is_help=True)


class Archive(str, Enum):
    speech_commands = "speech-commands"


@dataset_app.command("download")
def download(
    name: Annotated[Archive, typer.Argument(help="Which dataset (speech-commands).")],
    dest: Annotated[Path, typer.Argument(help="Folder to extract into (Speech Commands layout).")],
    version: Annotated[str, typer.Option("--version", help="Speech Commands version: 1 (v0.01) or 2 (v0.02).")] = "2",
    url: Annotated[Optional[str], typer.Option("--url", help="Fetch from this URL instead (a mirror).",
                                               envvar="KEYWIRE_DATASET_URL")] = None,
    sha256: Annotated[Optional[str], typer.Option("--sha256", help="Expected sha256 of the archive at --url.")] = None,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="Keep the .tar.gz under DEST/.download.")] = False,
    retries: Annotated[int, typer.Option("--retries", help="Reconnect this often after a cut connection.")] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download the official archive (resumable, checksum-verified) and extract it into DEST."""
    from keywire.training.download import DownloadSpec, download as fetch, speech_commands_archive

    from keywire.training.progress import bar

    with bar("downloading", enabled=not quiet, unit="bytes") as progress:  # rich, on a terminal only
        info = speech_commands_archive(version)
        if url and not sha256:
            raise ConfigError("--url needs --sha256 (the archive must be verifiable)")
        spec = DownloadSpec(url=url or info.url, sha256=sha256 or info.sha256, dest=dest,
                            size=None if url else info.size, keep_archive=keep_archive, retries=retries)
        result = fetch(spec, progress)
    if result.status == "present":
        typer.echo(f"{dest}: already downloaded and verified", err=True)
    else:
        resumed = f", resumed at {result.resumed_from} bytes" if result.resumed_from else ""
        typer.echo(f"{dest}: {result.files} WAV files extracted (sha256 verified{resumed})", err=True)


@dataset_app.command("synth")
def synth(
    words: Annotated[str, typer.Option("--words", "-w", help="Keywords, comma-separated (on,off).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (Speech Commands layout).")],
    per_word: Annotated[int, typer.Option("--per-word", "-n", help="Clips per keyword.")] = 50,
    per_negative: Annotated[Optional[int], typer.Option(
        "--per-negative", help="Clips per negative word (default: per-word / 4; 0 = no negatives).")] = None,
    negatives: Annotated[str, typer.Option("--negatives", help="Extra negative words, comma-separated.")] = "",
    near_misses: Annotated[int, typer.Option("--near-misses", help="Phonetically close negatives per keyword.")] = 4,
    common_negatives: Annotated[int, typer.Option("--common-negatives", help="Other common words as negatives.")] = 10,
    voices: Annotated[str, typer.Option(
        "--voices", help="Voices, comma-separated: espeak-ng, flite, en-gb+f3, flite:slt (default: all).",
        envvar="KEYWIRE_SYNTH_VOICES")] = "",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same dataset.")] = 0,
    rate: Annotated[int, typer.Option("--rate", help="Sample rate in Hz.")] = 16000,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Clips rendered in parallel.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Speak keywords and negatives with every TTS voice on the machine into 1 s clips."""
    from keywire.training.synth import SynthConfig, parse_words, synthesize_dataset

    from keywire.training.progress import bar

    with bar("synthesizing", enabled=not quiet) as progress:  # rich, on a terminal only
        neg = tuple(w.strip() for w in negatives.split(",") if w.strip())
        config = SynthConfig(words=parse_words(words), out=out, per_word=per_word, per_negative=per_negative,
                             negatives=neg, near_misses=near_misses, common_negatives=common_negatives,
                             voices=tuple(v.strip() for v in voices.split(",") if v.strip()),
                             seed=seed, rate=rate, jobs=jobs)
        config.validate()
        report = synthesize_dataset(config, progress)
    for f in report.failures[:5]:
        typer.echo(f"warning: {f}", err=True)
    typer.echo(report.summary())


@dataset_app.command("passages")
def passages(
    out: Annotated[Path, typer.Option("--out", "-o", help="Long WAV to write.")],
    text_file: Annotated[Optional[Path], typer.Option(
        "--text-file", help="Passages, separated by blank lines (default: the built-in ones).")] = None,
    forbid: Annotated[str, typer.Option("--forbid", help="Keywords no passage may contain, comma-separated.")] = "",
    voices: Annotated[str, typer.Option("--voices", help="Voices, comma-separated (default: all).")] = "",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same recording.")] = 0,
    rate: Annotated[int, typer.Option("--rate", help="Sample rate in Hz.")] = 16000,
    word_salad: Annotated[int, typer.Option(
        "--word-salad", help="Read N sentences of random common words instead of the built-in passages "
                             "(training background speech; the passages stay evaluation material).")] = 0,
) -> None:
    """Read passages aloud with varied voices into one long WAV (keyword-free background speech)."""
    from keywire.training.synth import synthesize_passages
    from keywire.training.synth_words import PASSAGES
    from keywire.training.synth_words import word_salad as salad

    texts: tuple[str, ...] = PASSAGES
    if word_salad < 0:
        raise ConfigError(f"--word-salad must be >= 0, got {word_salad}")
    if word_salad and text_file is not None:
        raise ConfigError("--word-salad and --text-file exclude each other")
    if word_salad:
        texts = salad(word_salad, seed)
    if text_file is not None:
        raw = text_file.read_text()
        texts = tuple(" ".join(p.split()) for p in raw.split("\n\n") if p.strip())
    result = synthesize_passages(out, texts, tuple(v.strip() for v in voices.split(",") if v.strip()),
                                 seed=seed, rate=rate,
                                 forbidden=tuple(w.strip() for w in forbid.split(",") if w.strip()))
    typer.echo(f"{out}: {result.seconds:.1f} s, {len(result.segments)} passages")


@dataset_app.command("voices")
def voices_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (engines, voices) instead of lines.")] = False,
) -> None:
    """List the TTS engines (usable or why not) and the default synthetic voices."""
    from keywire.training.synth_voices import VoiceCatalog

    cat = VoiceCatalog.probe()
    if as_json:
        typer.echo(json.dumps({"engines": {engine: {"usable": why is None, "reason": why or ""}
                                           for engine, why in cat.status.items()},
                               "voices": [{"id": v.id, "spec": v.spec, "engine": v.engine, "name": v.name}
                                          for v in cat.default_voices()]}, indent=1))
        return
    for engine, why in cat.status.items():
        typer.echo(f"{engine}: {'ok' if why is None else 'UNUSABLE: ' + why}")
    for v in cat.default_voices():
        typer.echo(f"{v.id}  {v.spec}")


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
