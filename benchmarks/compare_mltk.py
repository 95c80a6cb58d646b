"""Streaming accuracy, side by side: keywire's models and MLTK's pretrained models on the same
long test streams, before and after calibration.

    nice -n 10 .venv/bin/python benchmarks/compare_mltk.py \\
        --keywire training/models/speech12/speech12.tflite --keywire training/models/on_off/on_off.tflite \\
        --data ../shared/data --out .cache/bench/streaming

Material (all by path, nothing copied): Speech Commands clips from ../shared/data split by
speaker exactly as the bundled recipes split them (salted hash, 10% validation, 20% test):
evaluation positives are the *test* speakers (never trained on), calibration positives the
*validation* speakers. Background: the six noise recordings (calibration uses the first half
of each, evaluation the second), `_unknown_` words and `_silence_` snippets of the same
speaker splits, and keyword-free passages read by espeak-ng/flite
(`keywire.training.synth.synthesize_passages`, two different seeds).

Positive streams are built per keyword group shared with an MLTK model (on/off; yes/no;
left/right/up/down/stop/go), so a keywire model and an MLTK model hear exactly the same
audio. Each model is scored once per stream through the agent pipeline (score traces are
cached under --out, keyed by model and audio hash); everything else is replayed.

Reported per model and keyword: recall and FA/hour at the model's own settings, FRR at
1 FA/hour on the threshold sweep, and after `calibrate` (target --target FA/hour per keyword,
chosen on the calibration streams) the FRR and FA/hour on the evaluation streams. FA/hour is
measured over all evaluated audio (background + positive streams of the group).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from keywire.agent.model import KeywordModel
from keywire.training import calibrate as cb
from keywire.training import score_trace as sc
from keywire.training import stream_eval as se
from keywire.training import streams as st
from keywire.training.dataset import speaker_of, split_of

GROUPS = {"on_off": ("on", "off"), "yes_no": ("yes", "no"),
          "directions": ("left", "right", "up", "down", "stop", "go")}
SC_WORDS = tuple(w for g in GROUPS.values() for w in g)
MLTK_FILES = ("keyword_spotting_on_off_v3.tflite", "tflite_micro_speech.tflite",
              "keyword_spotting_mobilenetv2.mltk.zip")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- material
def split_clips(sc_root: Path, split: str) -> list[st.KeywordClip]:
    """Keyword clips of one recipe split ('test' or 'validation')."""
    return [c for c in st.keyword_clips(sc_root, SC_WORDS)
            if split_of(speaker_of(c.path.name), 10.0, 20.0, "keywire") == split]


def background_files(data: Path, split: str, tts: Sequence[Path]) -> list[Path]:
    """Noise recordings (halved later by the pool's portion), `_unknown_`/`_silence_` clips of the
    split's speakers, and the split's synthetic passages."""
    sc = data / "speech_commands_v0.02_test_dev"
    short = [f for d in ("_unknown_", "_silence_") for f in sorted((sc / d).glob("*.wav"))
             if _short_split(f) == split]
    return sorted((data / "background_noise").glob("*.wav")) + short + list(tts)


def _short_split(f: Path) -> str:
    if "_nohash_" in f.name:
        return split_of(speaker_of(f.name), 10.0, 20.0, "keywire")
    # _silence_ snippets have no speaker: a stable hash, same proportions
    h = zlib.crc32(f.name.encode()) % 100
    return "validation" if h < 10 else "test" if h < 30 else "train"


def tts_passages(out_dir: Path, seed: int) -> Path:
    """Keyword-free synthetic speech (cached)."""
    from keywire.training.synth import synthesize_passages

    out = out_dir / f"passages_seed{seed}.wav"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        log(f"synthesizing keyword-free passages (seed {seed})")
        synthesize_passages(out, seed=seed, forbidden=SC_WORDS)
    return out


def mltk_models(data: Path, cache: Path) -> list[Path]:
    out = []
    for name in MLTK_FILES:
        p = data / "mltk_models" / name
        if name.endswith(".zip"):
            dst = cache / name.replace(".mltk.zip", ".tflite")
            if not dst.exists():
                with zipfile.ZipFile(p) as z:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(z.read(name.replace(".mltk.zip", ".tflite")))
            p = dst
        out.append(p)
    return out


# ----------------------------------------------------------------------------- scoring with a cache
def audio_key(s: st.Stream) -> str:
    return hashlib.sha1(s.samples.tobytes()).hexdigest()[:16]


def cached_trace(model: KeywordModel, s: st.Stream, cache: Path, keys: dict) -> sc.ScoreTrace:
    key = keys.setdefault(s.name + str(s.snr_db) + str(id(s)), audio_key(s))
    f = cache / "traces" / model.sha256[:12] / f"{s.name}_{key}.npz"
    if f.exists():
        z = np.load(f)
        return sc.ScoreTrace(s.name, s.kind, s.duration_s, z["t"], z["s"], s.occurrences, s.snr_db)
    t0 = time.process_time()
    tr = sc.collect_scores(model, s)
    log(f"  {model.name}: scored {s.name} ({s.duration_s / 60:.1f} min) in {time.process_time() - t0:.1f} CPU-s")
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f, t=tr.times_ms, s=tr.scores)
    return tr


# ----------------------------------------------------------------------------- main
@dataclasses.dataclass
class Material:
    eval_bg: list[st.Stream]
    cal_bg: list[st.Stream]
    eval_pos: dict[str, list[st.Stream]]  # condition "group/snr10" -> streams
    cal_pos: dict[str, list[st.Stream]]  # "group" -> streams at the calibration SNR


def split_background(data: Path, cache: Path, split: str) -> tuple[list[Path], tuple[float, float]]:
    """The background of a split's streams: its files (real speech, noise recordings and TTS
    passages of the split's own seeds) and the portion of each noise recording it may use
    (test: the second half, validation: the first)."""
    seeds, portion = ((11, 13, 15, 17), (0.5, 1.0)) if split == "test" else ((12, 14, 16, 18), (0.0, 0.5))
    return background_files(data, split, [tts_passages(cache / "tts", s) for s in seeds]), portion


def build_material(args: argparse.Namespace, groups: Sequence[str]) -> Material:
    data = Path(args.data)
    sc = data / "speech_commands_v0.02_test_dev"
    files, portion = split_background(data, Path(args.out), "test")
    pool_eval = st.BackgroundPool(files, portion=portion)
    files, portion = split_background(data, Path(args.out), "validation")
    pool_cal = st.BackgroundPool(files, portion=portion)
    cfg = st.StreamConfig(seed=args.seed, min_gap_s=args.gap[0], max_gap_s=args.gap[1], stream_s=600.0)
    cal_cfg = cfg.with_(seed=args.seed + 1000, snr_db=args.cal_snr)
    eval_clips, cal_clips = split_clips(sc, "test"), split_clips(sc, "validation")
    log(f"positives: {len(eval_clips)} test-speaker clips (evaluation), {len(cal_clips)} validation-speaker "
        f"clips (calibration)")
    m = Material(st.build_background_streams(pool_eval, args.hours, cfg, name="bg_eval"),
                 st.build_background_streams(pool_cal, args.cal_hours, cal_cfg, name="bg_cal"), {}, {})
    for g in groups:
        words = GROUPS[g]
        ec = [c for c in eval_clips if c.keyword in words]
        cc = [c for c in cal_clips if c.keyword in words]
        for snr in args.snr:
            m.eval_pos[f"{g}/snr{snr:g}"] = st.build_positive_streams(ec, pool_eval, cfg.with_(snr_db=snr),
                                                                      name=f"{g}_eval")
        for lo, hi in args.spacing:
            m.eval_pos[f"{g}/snr{args.cal_snr:g}_gap{lo:g}-{hi:g}"] = st.build_positive_streams(
                ec, pool_eval, cfg.with_(snr_db=args.cal_snr, min_gap_s=lo, max_gap_s=hi),
                name=f"{g}_eval_gap{lo:g}-{hi:g}")
        m.cal_pos[g] = st.build_positive_streams(cc, pool_cal, cal_cfg, name=f"{g}_cal")
    return m


def _category(source: str) -> str:
    folder, _, name = source.partition("/")
    if folder == "tts":
        return "synthetic passages"
    if folder in ("_unknown_", "_silence_") or source == "mixed":
        return "_unknown_/_silence_ clips"
    if folder == "background_noise":
        return Path(name).stem
    return source


def model_groups(model: KeywordModel, groups: Sequence[str]) -> list[str]:
    return [g for g in groups if set(GROUPS[g]) & set(model.classes)]


def run_model(path: Path, origin: str, mat: Material, args: argparse.Namespace, groups: Sequence[str]) -> dict:
    model = KeywordModel.load(path)
    cache = Path(args.out)
    keys: dict = {}
    mg = model_groups(model, groups)
    log(f"{origin} {model.name}: classes {list(model.classes)}; groups {mg}")
    t0 = time.process_time()
    eval_bg = [cached_trace(model, s, cache, keys) for s in mat.eval_bg]
    cal_bg = [cached_trace(model, s, cache, keys) for s in mat.cal_bg]
    eval_pos = {c: [cached_trace(model, s, cache, keys) for s in ss] for c, ss in mat.eval_pos.items()
                if c.split("/")[0] in mg}
    cal_pos = [cached_trace(model, s, cache, keys) for g in mg for s in mat.cal_pos[g]]
    cpu = time.process_time() - t0
    # calibration on the calibration streams only
    spec = cb.CalibrationSpec(target_fa_per_hour=args.target)
    cal = cb.calibrate(cal_bg + cal_pos, model.classes, model.detection, spec)
    log(f"{model.name}: calibrated\n{cb.describe(cal)}")
    out: dict = {"origin": origin, "name": model.name, "path": str(path), "sha256": model.sha256,
                 "classes": list(model.classes), "detection": model.detection.to_params(),
                 "calibrated": cal.to_dict(), "scoring_cpu_s": round(cpu, 1), "conditions": {}}
    # which background material makes the model fire (own settings, evaluation background)
    sources: dict[str, dict[str, int]] = {}
    for stream, trace in zip(mat.eval_bg, eval_bg):
        for kw, counts in se.false_accept_sources(trace, stream, model.classes, model.detection).items():
            for src, n in counts.items():
                cat = _category(src)
                sources.setdefault(kw, {})[cat] = sources.setdefault(kw, {}).get(cat, 0) + n
    out["fa_sources_own"] = sources
    log(f"{model.name}: false accepts on the evaluation background by source: {sources}")
    det_plot: dict = {}
    for cond, traces in eval_pos.items():
        group = cond.split("/")[0]
        allt = eval_bg + traces
        own = se.keyword_results(allt, model.classes, model.detection, args.tolerance,
                                 targets=tuple(dict.fromkeys((1.0, args.target, 0.1))))
        calr = se.keyword_results(allt, model.classes, cal.detection, args.tolerance, sweep=False)
        rows = {}
        for kw in GROUPS[group]:
            if kw not in own:
                continue
            r, c = own[kw], calr[kw]
            rows[kw] = {"occurrences": r.occurrences, "recall": r.recall, "fa_per_hour": r.fa_per_hour,
                        "frr_at_1_fa_h": r.at_targets["1"]["frr"],
                        f"frr_at_{args.target:g}_fa_h": r.at_targets[f"{args.target:g}"]["frr"],
                        "frr_at_0.1_fa_h": r.at_targets["0.1"]["frr"],
                        "latency_median_ms": r.latency_ms["median"],
                        "calibrated_frr": c.frr, "calibrated_fa_per_hour": c.fa_per_hour,
                        "calibrated_latency_median_ms": c.latency_ms["median"],
                        "hours": r.hours}
        out["conditions"][cond] = rows
        if "_gap" not in cond:  # one panel per SNR holding all of the model's keywords
            det_plot.setdefault(cond.split("/")[1], {}).update({kw: own[kw] for kw in rows})
    if det_plot and args.plots:
        Path(args.plots).mkdir(parents=True, exist_ok=True)
        det_plot = {c: det_plot[c] for c in sorted(det_plot, key=lambda c: float(c[3:]))}
        se.plot_det(det_plot, Path(args.plots) / f"det_{origin}_{model.name}.png",
                    title=f"{origin} {model.name}: FRR vs FA/hour (own settings, threshold sweep)")
    return out


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    """Tables for docs/BENCHMARKS.md."""
    lines = []
    conds = sorted({c for r in results for c in r["conditions"]}, key=lambda c: (c.split("/")[0], c))
    for cond in conds:
        group, variant = cond.split("/")
        lines.append(f"\n**{group}, {variant}** (evaluation streams)\n")
        lines.append("| model | keyword | n | recall (own settings) | FA/h (own) | FRR @ 1 FA/h (sweep) "
                     "| FRR calibrated | FA/h calibrated | latency median ms |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            for kw, v in r["conditions"].get(cond, {}).items():
                lines.append(f"| {r['origin']} {r['name']} | {kw} | {v['occurrences']} | {v['recall'] * 100:.1f}% "
                             f"| {v['fa_per_hour']:.2f} | {v['frr_at_1_fa_h'] * 100:.1f}% "
                             f"| {v['calibrated_frr'] * 100:.1f}% | {v['calibrated_fa_per_hour']:.2f} "
                             f"| {_f(v['calibrated_latency_median_ms'])} |")
    return "\n".join(lines)


def summary_markdown(results: list[dict], snr: float, target: float, base_gap: str) -> str:
    """Compact tables for docs: every model per keyword at one SNR, and the spacing check."""
    def pct(v: Optional[float]) -> str:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v * 100:.1f}%"

    lines = [f"| keyword | model | n | recall (own settings) | FA/h (own) | FRR @ 1 FA/h (sweep) "
             f"| FRR @ {target:g} FA/h (sweep) | calibrated FRR | calibrated FA/h |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for r in results:
        for cond, kws in r["conditions"].items():
            if cond.split("/")[1] != f"snr{snr:g}":
                continue
            for kw, v in kws.items():
                rows.append((SC_WORDS.index(kw), r["origin"] != "keywire", kw, r, v))
    for _, _, kw, r, v in sorted(rows, key=lambda t: (t[0], t[1], t[3]["name"])):
        lines.append(f"| {kw} | {r['origin']} {r['name']} | {v['occurrences']} | {pct(v['recall'])} "
                     f"| {v['fa_per_hour']:.2f} | {pct(v['frr_at_1_fa_h'])} | {pct(v[f'frr_at_{target:g}_fa_h'])} "
                     f"| {pct(v['calibrated_frr'])} | {v['calibrated_fa_per_hour']:.2f} |")
    variants = sorted({c.split("/")[1] for r in results for c in r["conditions"] if "_gap" in c})
    if variants:
        lines += ["", f"Spacing check at {snr:g} dB, recall at the model's own settings (and FRR @ 1 FA/h):", "",
                  f"| keyword | model | gaps {base_gap} s | " + " | ".join(
                      f"gaps {v.split('_gap')[1]} s" for v in variants) + " |",
                  "|---|---|" + "---:|" * (len(variants) + 1)]
        for r in results:
            groups = sorted({c.split("/")[0] for c in r["conditions"]})
            for g in groups:
                base = r["conditions"].get(f"{g}/snr{snr:g}", {})
                for kw, v in base.items():
                    cells = [f"{pct(v['recall'])} ({pct(v['frr_at_1_fa_h'])})"]
                    for var in variants:
                        w = r["conditions"].get(f"{g}/{var}", {}).get(kw)
                        cells.append("n/a" if w is None else f"{pct(w['recall'])} ({pct(w['frr_at_1_fa_h'])})")
                    lines.append(f"| {kw} | {r['origin']} {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(v: Optional[float]) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.0f}"


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keywire", action="append", default=[], help="keywire .tflite (repeat)")
    ap.add_argument("--mltk", action="append", default=None, help="MLTK .tflite (default: the shared ones)")
    ap.add_argument("--no-mltk", action="store_true")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=".cache/bench/streaming")
    ap.add_argument("--plots", default=None, help="folder for DET PNGs")
    ap.add_argument("--hours", type=float, default=1.0, help="keyword-free evaluation background")
    ap.add_argument("--cal-hours", type=float, default=0.5, help="keyword-free calibration background")
    ap.add_argument("--snr", type=float, nargs="+", default=[10.0])
    ap.add_argument("--cal-snr", type=float, default=10.0)
    ap.add_argument("--gap", type=float, nargs=2, default=[3.0, 9.0])
    ap.add_argument("--spacing", type=lambda s: tuple(float(v) for v in s.split("-")), nargs="*",
                    default=[(2.0, 3.0), (8.0, 16.0)])
    ap.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    ap.add_argument("--target", type=float, default=0.5, help="calibration target, FA/hour per keyword")
    ap.add_argument("--tolerance", type=float, default=se.DEFAULT_TOLERANCE_S)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--summarize", nargs="+", default=None,
                    help="only print the summary tables of earlier compare_mltk.json files")
    args = ap.parse_args(argv)
    if args.summarize:
        results = [r for f in args.summarize for r in json.loads(Path(f).read_text())["results"]]
        print(summary_markdown(results, args.cal_snr, args.target, f"{args.gap[0]:g}-{args.gap[1]:g}"))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [(Path(p), "keywire") for p in args.keywire]
    if not args.no_mltk:
        models += [(Path(p), "MLTK") for p in (args.mltk or mltk_models(Path(args.data), out / "mltk"))]
    t0 = time.time()
    mat = build_material(args, args.groups)
    log(f"streams built in {time.time() - t0:.0f} s: evaluation background {args.hours} h, calibration "
        f"background {args.cal_hours} h, positive conditions {list(mat.eval_pos)}")
    results = []
    for path, origin in models:
        results.append(run_model(path, origin, mat, args, args.groups))
        (out / "compare_mltk.json").write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                                                           "results": results}, indent=1, default=str))
    md = markdown(results, args)
    (out / "compare_mltk.md").write_text(md + "\n")
    summary = summary_markdown(results, args.cal_snr, args.target, f"{args.gap[0]:g}-{args.gap[1]:g}")
    (out / "compare_mltk_summary.md").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
