"""`keywire evaluate-stream` and `keywire calibrate`: streaming accuracy a device user feels.

Thin commands: parse options, build the test streams (`keywire.training.streams`), score
them through the agent pipeline and report (`keywire.training.stream_eval`), or choose
detection settings (`keywire.training.calibrate`). No TensorFlow is imported.
"""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from keywire.protocol.errors import ConfigError

class Scope(str, Enum):
    keyword = "keyword"
    total = "total"


def resolve_model(spec: Path) -> Path:
    """A .tflite path, or the name of a bundled model (`training/models/<name>/<name>.tflite`)."""
    if spec.exists() or spec.suffix == ".tflite" or len(spec.parts) > 1:
        return spec
    from keywire.training.bundled import model_path

    return model_path(str(spec))


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ConfigError(f"{option} is empty")
    return vals


def _gaps(text: str) -> tuple[tuple[float, float], ...]:
    """`2-3,8-16` -> ((2, 3), (8, 16)); empty -> no spacing check."""
    out = []
    for part in (p for p in text.split(",") if p.strip()):
        lo, sep, hi = part.partition("-")
        try:
            out.append((float(lo), float(hi if sep else lo)))
        except ValueError:
            raise ConfigError(f"--spacing-check wants ranges like 2-3,8-16, got {text!r}") from None
    return tuple(out)


def _backgrounds(specs: List[str]) -> list[Path]:
    from keywire.training.streams import audio_files

    paths = [Path(p) for s in specs for p in s.split(",") if p.strip()]
    if not paths:
        raise ConfigError("--background needs at least one folder or WAV file")
    return audio_files(paths)


def _progress(quiet: bool):
    return None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))


class SplitChoice(str, Enum):
    test = "test"
    validation = "validation"
    train = "train"
    all = "all"


def evaluate(
    model: Annotated[Path, typer.Argument(
        help="A .tflite, a keywire model folder, an MLTK .mltk.zip, or a bundled model's name.")],
    dataset_dir: Annotated[Path, typer.Argument(
        help="Clips in Speech Commands layout (DIR/<label>/*.wav) or a flat folder of <label>_<speaker>_<n>.wav.")],
    split: Annotated[Optional[SplitChoice], typer.Option(
        help="Which speakers of the recipe's split to score: test (held out; the default when the model "
             "carries its recipe), validation, train, or all.")] = None,
    recipe: Annotated[Optional[Path], typer.Option(
        help="The recipe the model was trained with (default: recipe.toml beside the model).")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the full report as JSON to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON on stdout instead of tables.")] = False,
    plots: Annotated[Optional[Path], typer.Option(
        help="Folder for confusion matrix, ROC and precision/recall plots.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Accuracy of a model on labelled clips through the agent's own frontend and runtime (the
    device's code path); with the model's recipe, only speakers it did not train on."""
    from keywire.training import eval_split
    from keywire.training.evaluate import evaluate_selection, load_any_model, save_json, save_plots
    from keywire.training.progress import bar

    from .tables import eval_table, show, warn

    from .cli import debug_enabled
    from .quiet import native_stderr_silenced

    path = resolve_model(model)
    with native_stderr_silenced(debug_enabled()):
        m = load_any_model(path)
    mr = eval_split.find_recipe(path, recipe)
    sel = eval_split.select(dataset_dir, m.classes, mr, split.value if split else None)
    if sel.warning:
        warn(sel.warning)
    if not sel.clips:
        raise ConfigError(f"nothing to score in {dataset_dir} for --split {sel.split}")
    with bar(f"evaluating {len(sel.clips)} clips", enabled=not quiet) as update:
        r = evaluate_selection(m, sel, update)
    doc = dict(r.summary(), split=sel.split, scored=sel.note, warning=sel.warning or None,
               model={"name": m.name, "source": m.source, "sha256": m.sha256, "bytes": m.size})
    if report:
        save_json(r, report, m)
        report.write_text(json.dumps(doc, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"accuracy {r.accuracy * 100:.1f}% on {len(r.truth)} clips of {dataset_dir}: {sel.note}")
        show(eval_table(r, f"{m.name}: per class"))
        for s in r.skipped:
            typer.echo(f"skipped {s}", err=True)
    if plots:
        for p in save_plots(r, plots):
            typer.echo(f"wrote {p}", err=True)


def evaluate_stream(
    model: Annotated[Path, typer.Argument(help="A .tflite model (or a bundled model's name).")],
    positives: Annotated[Optional[Path], typer.Option(
        help="Keyword clips in Speech Commands layout (DIR/<keyword>/*.wav).")] = None,
    background: Annotated[Optional[List[str]], typer.Option(
        help="Background speech/noise: folders or WAV files (repeat or comma-separate).")] = None,
    hours: Annotated[float, typer.Option(help="Hours of keyword-free background for false accepts.")] = 1.0,
    snr_db: Annotated[str, typer.Option("--snr-db", help="Keyword-to-background SNRs, comma-separated.")] = "0,5,10,20",
    seed: Annotated[int, typer.Option(help="Seed: same seed and inputs give the same streams.")] = 0,
    gap_s: Annotated[str, typer.Option("--gap-s", help="Range of gaps between keywords, seconds (MIN-MAX).")] = "3-9",
    spacing_check: Annotated[str, typer.Option(
        help="Extra gap ranges scored at --spacing-snr-db to show results do not hinge on spacing "
             "('' to skip).")] = "2-3,8-16",
    spacing_snr_db: Annotated[float, typer.Option(help="SNR of the spacing-check streams.")] = 10.0,
    tolerance_s: Annotated[float, typer.Option(help="A detection up to this long after a keyword ends is a hit.")] = 1.0,
    max_per_keyword: Annotated[Optional[int], typer.Option(help="Use at most this many clips per keyword.")] = None,
    background_dbfs: Annotated[float, typer.Option(help="Nominal background level (dBFS RMS).")] = -38.0,
    streams: Annotated[Optional[Path], typer.Option(
        help="Score streams saved earlier by --save-streams instead of building new ones.")] = None,
    save_streams: Annotated[Optional[Path], typer.Option(help="Also save the streams (WAV + labels) here.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--report", help="Also write the full report (with DET curves) "
                                                      "as JSON to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON on stdout instead of tables.")] = False,
    plots: Annotated[Optional[Path], typer.Option(help="Write DET curve PNGs into this folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Recall, false accepts per hour, DET curves and latency on long keyword/background streams."""
    from .tables import show, stream_table

    report = run_evaluate_stream(model, positives, background or [], hours, snr_db, seed, gap_s, spacing_check,
                                 spacing_snr_db, tolerance_s, max_per_keyword, background_dbfs, streams,
                                 save_streams, json_out, plots, _progress(quiet))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
        return
    show(stream_table(report))
    for line in report.spacing_summary() + report.to_text().splitlines()[-1:]:
        typer.echo(line)  # spacing checks, then the background and CPU summary


def _plan(hours: float, snr_db: str, seed: int, gap_s: str, spacing_check: str, spacing_snr_db: float,
          tolerance_s: float, max_per_keyword: Optional[int], background_dbfs: float):
    from keywire.training.stream_eval import EvalPlan
    from keywire.training.streams import StreamConfig

    gaps = _gaps(gap_s)
    if len(gaps) != 1:
        raise ConfigError(f"--gap-s wants one range like 3-9, got {gap_s!r}")
    if max_per_keyword is not None and max_per_keyword <= 0:
        raise ConfigError("--max-per-keyword must be positive")
    cfg = StreamConfig(seed=seed, min_gap_s=gaps[0][0], max_gap_s=gaps[0][1], background_dbfs=background_dbfs)
    plan = EvalPlan(snr_db=_floats(snr_db, "--snr-db"), hours=hours, tolerance_s=tolerance_s, stream=cfg,
                    spacing_check=_gaps(spacing_check), spacing_snr_db=spacing_snr_db,
                    max_per_keyword=max_per_keyword)
    plan.validate()
    return plan


def run_evaluate_stream(model_spec: Path, positives: Optional[Path], background: List[str], hours: float,
                        snr_db: str, seed: int, gap_s: str, spacing_check: str, spacing_snr_db: float,
                        tolerance_s: float, max_per_keyword: Optional[int], background_dbfs: float,
                        streams_dir: Optional[Path], save_dir: Optional[Path], json_out: Optional[Path],
                        plots: Optional[Path], progress=None):
    """The engine call behind `evaluate-stream` (importable for benchmarks)."""
    from keywire.training import stream_eval as se
    from keywire.training import streams as st

    plan = _plan(hours, snr_db, seed, gap_s, spacing_check, spacing_snr_db, tolerance_s, max_per_keyword,
                 background_dbfs)
    if streams_dir is None:  # check the inputs before the (slower) model load
        if positives is None or not background:
            raise ConfigError("give --positives and --background (or --streams DIR of saved streams)")
        all_clips = st.keyword_clips(positives)
        bg_files = _backgrounds(background)
    m = _load(model_spec)
    rate = m.frontend.sample_rate_hz
    if streams_dir is not None:
        sset = se.stream_set_from_saved(st.load_streams(streams_dir, rate))
    else:
        clips = se.select_clips(all_clips, m.classes, plan.max_per_keyword, seed)
        pool = st.BackgroundPool(bg_files, rate)
        plan = _with_rate(plan, rate)
        sset = se.build_stream_set(clips, pool, plan)
        if save_dir is not None:
            all_streams = list(sset.background) + [s for ss in sset.positives.values() for s in ss]
            st.save_streams(all_streams, save_dir, plan.stream)
    report = se.evaluate(m, sset, plan, progress=progress)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=1))
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        se.plot_det(report.conditions, plots / f"det_{m.name}.png", title=f"{m.name}: DET per condition")
    return report


def _load(model_spec: Path):  # -> KeywordModel
    """The model, without TFLite's native log line (unless --debug)."""
    from keywire.agent.model import KeywordModel

    from .cli import debug_enabled
    from .quiet import native_stderr_silenced

    with native_stderr_silenced(debug_enabled()):
        return KeywordModel.load(resolve_model(model_spec))


def _with_rate(plan, rate: int):
    import dataclasses

    return dataclasses.replace(plan, stream=plan.stream.with_(sample_rate=rate))


def calibrate(
    model: Annotated[Path, typer.Argument(help="A .tflite model (or a bundled model's name).")],
    background: Annotated[List[str], typer.Option(help="Background speech/noise: folders or WAV files.")],
    output: Annotated[Path, typer.Option("--out", "-o", "--output", help="Where to write the calibrated .tflite.")],
    target_fa_per_hour: Annotated[float, typer.Option(help="False accepts per hour to stay within.")] = 0.5,
    positives: Annotated[Optional[Path], typer.Option(
        help="Keyword clips (Speech Commands layout); without them thresholds only meet the FA target.")] = None,
    hours: Annotated[float, typer.Option(help="Hours of keyword-free background to calibrate on.")] = 1.0,
    snr_db: Annotated[str, typer.Option("--snr-db", help="SNRs of the positive streams.")] = "10",
    scope: Annotated[Scope, typer.Option(help="FA target per keyword or for all keywords together.")] = Scope.keyword,
    seed: Annotated[int, typer.Option(help="Stream seed (use a different one than for evaluation).")] = 1,
    max_per_keyword: Annotated[Optional[int], typer.Option(help="At most this many clips per keyword.")] = None,
    tolerance_s: Annotated[float, typer.Option(help="A detection up to this long after a keyword ends is a hit.")] = 1.0,
    json_out: Annotated[Optional[Path], typer.Option("--report", help="Also write the calibration report as JSON "
                                                      "to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration report as JSON on stdout.")] = False,
    max_frr: Annotated[float, typer.Option(help="Warn when the calibrated model misses more than this share of "
                                           "keywords (false-reject rate).")] = 0.5,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
) -> None:
    """Choose per-class thresholds, window and minimum count for a false-accept target; write them
    into a copy of the model."""
    cal = run_calibrate(model, background, output, target_fa_per_hour, positives, hours, snr_db, scope.value,
                        seed, max_per_keyword, tolerance_s, json_out, _progress(quiet))
    import math

    from .tables import calibration_table, show, warn

    if as_json:
        typer.echo(json.dumps(cal.to_dict(), indent=1))
    else:
        show(calibration_table(cal))
    worst = [c for c in cal.choices if not math.isnan(c.frr) and c.frr > max_frr]
    if worst:
        warn(f"the calibrated model misses {', '.join(f'{c.keyword!r} {c.frr * 100:.0f}%' for c in worst)} of the "
             f"keywords in the positive streams (above --max-frr {max_frr * 100:.0f}%): the FA target "
             f"{target_fa_per_hour:g}/h is too strict for this model; it is written anyway")
    elif math.isnan(cal.mean_frr):
        warn("no --positives: the thresholds only meet the false-accept target; how many keywords they miss is unknown")
    if cal.allowed_false_accepts == 0:
        need = cal.hours_allowing_one_false_accept
        warn(f"{cal.hours:.2f} h of background at {cal.budget_fa_per_hour:g} false accepts/hour per keyword allows none, "
             f"so each threshold sits just above the single highest score there; calibrate on {need:g} h or more "
             f"of scored streams (the positive streams count too; raise --hours, with that much keyword-free "
             f"audio) for thresholds set by more than one moment")
    typer.echo(f"wrote {output}", err=as_json)


def run_calibrate(model_spec: Path, background: List[str], output: Path, target: float, positives: Optional[Path],
                  hours: float, snr_db: str, scope: str, seed: int, max_per_keyword: Optional[int],
                  tolerance_s: float, json_out: Optional[Path], progress=None):
    """The engine call behind `calibrate` (importable for benchmarks)."""
    from keywire.training import calibrate as cb
    from keywire.training import stream_eval as se
    from keywire.training import streams as st

    spec = cb.CalibrationSpec(target_fa_per_hour=target, scope=scope, tolerance_s=tolerance_s)
    spec.validate()
    plan = _plan(hours, snr_db, seed, "3-9", "", 10.0, tolerance_s, max_per_keyword, -38.0)
    bg_files = _backgrounds(background)
    all_clips = st.keyword_clips(positives) if positives is not None else []
    m = _load(model_spec)
    plan = _with_rate(plan, m.frontend.sample_rate_hz)
    pool = st.BackgroundPool(bg_files, m.frontend.sample_rate_hz)
    clips = se.select_clips(all_clips, m.classes, plan.max_per_keyword, seed) if all_clips else []
    if clips:
        sset = se.build_stream_set(clips, pool, plan)
    else:
        sset = se.StreamSet(tuple(st.build_background_streams(pool, plan.hours, plan.stream)), {}, {})
    bg, pos, _, _ = se.score_stream_set(m, sset, progress)
    traces = list(bg) + [t for ts in pos.values() for t in ts]
    cal = cb.calibrate(traces, m.classes, m.detection, spec)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(cb.apply_calibration(m.data, cal))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(cal.to_dict(), indent=1))
    return cal


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("evaluate-stream")(evaluate_stream)
    app.command("calibrate")(calibrate)
