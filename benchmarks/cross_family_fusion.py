"""Cross-family score fusion: does averaging an embedding head with a microfrontend model of the
same classes buy a better trade-off between found keywords and false accepts?

A trial, not an agent feature (docs/BENCHMARKS.md, "Fusing the two families"). Both models
score the same audio through the agent's `KeywordSpotter`; at each inference of the first
model the fused score per class is the mean (or the minimum) of its uint8 score and the
second model's latest score at or before that time. The fused trace goes through the first
model's detection settings. Material: the 10 dB evaluation streams of `compare_mltk.py`
(same seed, same cache layout) and the keyword-free stream of `fa_per_hour.py`.

    nice -n 10 .venv/bin/python benchmarks/cross_family_fusion.py \\
        --first training/models/speech12/speech12.tflite \\
        --second training/models/speech12_mf/speech12_mf.tflite --data ../shared/data
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

import compare_mltk as cm
import fa_per_hour as fa
from keywire.agent.model import KeywordModel
from keywire.training import score_trace as sc
from keywire.training import stream_eval as se
from keywire.training import streams as st


def fuse(a: sc.ScoreTrace, b: sc.ScoreTrace, how: str) -> sc.ScoreTrace:
    """`a` with each score replaced by its mean (round half up) or minimum with `b`'s latest."""
    idx = np.searchsorted(b.times_ms, a.times_ms, side="right") - 1
    bs = np.where(idx[:, None] >= 0, b.scores[np.maximum(idx, 0)].astype(np.int32), 0)
    x = a.scores.astype(np.int32)
    f = (x + bs + 1) // 2 if how == "mean" else np.minimum(x, bs)
    return dataclasses.replace(a, scores=f.astype(np.uint8))


def figures(bg: list, pos: dict, classes, det, tolerance: float, sweep: bool) -> tuple[dict, dict, dict]:
    """Per keyword: recall and FA/h at `det`, and FRR at 1 FA/h on the sweep."""
    rec, frr1, fah = {}, {}, {}
    for cond, trs in pos.items():
        r = se.keyword_results(bg + trs, classes, det, tolerance, sweep=sweep, targets=(1.0,))
        for kw in cm.GROUPS[cond.split("/")[0]]:
            rec[kw], fah[kw] = r[kw].recall, r[kw].fa_per_hour
            if sweep:
                frr1[kw] = r[kw].at_targets["1"]["frr"]
    return rec, frr1, fah


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--first", required=True, help="model whose inference times and settings are used")
    ap.add_argument("--second", required=True, help="model of the same classes, other frontend")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=".cache/bench/streaming", help="trace cache (shared with compare_mltk.py)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    args = argparse.Namespace(data=a.data, out=a.out, hours=1.0, cal_hours=0.5, snr=[10.0], cal_snr=10.0,
                              gap=[3.0, 9.0], spacing=[], groups=list(cm.GROUPS), seed=a.seed)
    cache = Path(a.out)
    mat = cm.build_material(args, args.groups)
    first, second = KeywordModel.load(a.first), KeywordModel.load(a.second)
    if first.classes != second.classes:
        print(f"error: class lists differ: {first.classes} vs {second.classes}", file=sys.stderr)
        return 2
    speech = [str(Path(a.data) / "dspspeech20_dev" / s) for s in ("spk05", "spk06")]
    audio, _ = fa.keyword_free_stream(speech)
    real_speech = st.Stream("real_spk05_spk06", audio, 16000, kind="background")
    hours_real = real_speech.duration_s / 3600

    def traces(model: KeywordModel) -> tuple[list, dict, sc.ScoreTrace]:
        keys: dict = {}
        return ([cm.cached_trace(model, s, cache, keys) for s in mat.eval_bg],
                {c: [cm.cached_trace(model, s, cache, keys) for s in ss] for c, ss in mat.eval_pos.items()},
                cm.cached_trace(model, real_speech, cache, keys))

    (fb, fp, fr), (sb, sp, sr) = traces(first), traces(second)
    variants = {"first": (fb, fp, fr), "second, first's settings": (sb, sp, sr)}
    for how in ("mean", "min"):
        variants[f"fused ({how})"] = ([fuse(x, y, how) for x, y in zip(fb, sb)],
                                      {c: [fuse(x, y, how) for x, y in zip(fp[c], sp[c])] for c in fp},
                                      fuse(fr, sr, how))
    det = first.detection
    tol = se.DEFAULT_TOLERANCE_S
    print(f"real keyword-free speech: {hours_real:.3f} h; settings of {first.name}: {det}")
    for name, (bg, pos, real) in variants.items():
        _, frr1, _ = figures(bg, pos, first.classes, det, tol, sweep=True)
        print(f"\n{name}: mean FRR @ 1 FA/h (sweep) {np.mean(list(frr1.values())) * 100:.1f}%; per keyword "
              + json.dumps({k: round(v, 3) for k, v in frr1.items()}))
        print("| threshold | mean recall, 10 dB streams | FA/h, stream background (all keywords) "
              "| FA/h, real speech |\n|---:|---:|---:|---:|")
        for th in range(150, 256, 5):
            d = dataclasses.replace(det, detection_threshold=th, detection_threshold_list=None)
            rec, _, fah = figures(bg, pos, first.classes, d, tol, sweep=False)
            n_real = len(sc.detect_events(real, first.classes, d))
            print(f"| {th} | {np.mean(list(rec.values())) * 100:.1f}% | {sum(fah.values()):.2f} "
                  f"| {n_real / hours_real:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
