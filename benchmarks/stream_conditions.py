"""Where stream recall goes: each held-out keyword clip in a short stream (2 s of background
before its voiced part, 1.5 s after) through the agent's `KeywordSpotter`, over one kind of
background at a time. Usage (from the repository root):

    .venv/bin/python benchmarks/stream_conditions.py MODEL.tflite [MODEL ...] [--split test|validation]

Conditions: `floor` (the clip in white noise at its own noise floor: a quiet room, what
`keywire evaluate` scores), noise recordings only, speech only (other speakers' words and
keyword-free synthetic passages), and the mix the evaluation streams of `compare_mltk.py` use,
each at 30 and 10 dB (the keyword's voiced RMS above the background's, `streams.add_at_snr`).
Material is compare_mltk's, per split: `--split test` uses the evaluation positives and
background (test speakers, second halves of the noise recordings, passage seeds 11-17),
`--split validation` the calibration ones (for choosing between variants without touching
the test speakers).

Per model and condition: the share of keywords whose own class, on its own (no averaging),
ever exceeds 200 (the shipped threshold) and 127 within [voiced start, voiced end + 1 s], the
share for which it is ever the top class, and the median peak score. The raw peak bounds
what any detector setting can find.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_mltk as cm  # noqa: E402  (material and speaker split shared with the stream benchmark)

from keywire.agent.model import KeywordModel  # noqa: E402
from keywire.training import streams as st  # noqa: E402
from keywire.training.score_trace import collect_scores  # noqa: E402
from keywire.training.audio import load_clip  # noqa: E402
from keywire.training.augment import _dbfs_to_rms  # noqa: E402
from keywire.training.embeddings import floor_noise, noise_floor_dbfs  # noqa: E402

RATE = 16000
PRE_S, POST_S = 2.0, 1.5
CONDITIONS = (("floor", None, None), ("noise 30 dB", "noise", 30.0), ("speech 30 dB", "speech", 30.0),
              ("noise 10 dB", "noise", 10.0), ("speech 10 dB", "speech", 10.0), ("mix 10 dB", "mix", 10.0))


def pools(data: Path, out: Path, split: str) -> dict[str, st.BackgroundPool]:
    files, portion = cm.split_background(data, out, split)
    noise = [f for f in files if f.parent.name == "background_noise"]
    speech = [f for f in files if f.parent.name != "background_noise"]
    return {"mix": st.BackgroundPool(files, portion=portion), "noise": st.BackgroundPool(noise, portion=portion),
            "speech": st.BackgroundPool(speech, portion=portion)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=".cache/bench/streaming", help="where compare_mltk keeps its TTS passages")
    ap.add_argument("--split", default="test", choices=("test", "validation"))
    ap.add_argument("--stride", type=int, default=1, help="every n-th clip (quick looks)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    bg = pools(data, Path(args.out), args.split)
    clips = cm.split_clips(data / "speech_commands_v0.02_test_dev", args.split)[::args.stride]
    models = [KeywordModel.load(Path(m)) for m in args.models]
    cfg = st.StreamConfig()
    res: dict[tuple[int, str], list[tuple[int, bool]]] = {}
    for j, c in enumerate(clips):
        x = load_clip(c.path, RATE).astype(np.float64)
        span = st.voiced_span(x.astype(np.int16), RATE)
        pre, n = int(PRE_S * RATE), int(PRE_S * RATE) + len(x) + int(POST_S * RATE)
        for name, pool, snr in CONDITIONS:
            rng = np.random.default_rng(j)  # the same background per clip for every model
            if pool is None:
                mix = floor_noise(rng, n, noise_floor_dbfs(x))
                mix[pre - span[0]:pre - span[0] + len(x)] += x
            else:
                mix = st.background_bed(bg[pool], n, rng, cfg) + floor_noise(rng, n, -78.0)
                st.add_at_snr(mix, mix.copy(), x, span, pre, snr, _dbfs_to_rms(-68.0), RATE)
            y = np.clip(np.round(mix), -32768, 32767).astype(np.int16)
            lo, hi = pre * 1000 // RATE, (pre + span[1] - span[0]) * 1000 // RATE + 1000
            for mi, model in enumerate(models):
                tr = collect_scores(model, st.Stream(name, y, RATE), chunk_samples=RATE // 10)
                t, s = tr.times_ms, tr.scores
                m = (t >= lo) & (t <= hi)
                k = list(model.classes).index(c.keyword)
                res.setdefault((mi, name), []).append((int(s[m, k].max()), bool(np.any(np.argmax(s[m], 1) == k))))
    print(f"{len(clips)} keyword clips of the {args.split} speakers")
    print("| model | condition | own class > 200 | > 127 | ever top | median peak |")
    print("|---|---|---:|---:|---:|---:|")
    for (mi, name), v in res.items():
        a = np.array(v)
        print(f"| {Path(args.models[mi]).parent.name}/{Path(args.models[mi]).name} | {name} | "
              f"{np.mean(a[:, 0] > 200) * 100:.1f}% | {np.mean(a[:, 0] > 127) * 100:.1f}% | "
              f"{np.mean(a[:, 1]) * 100:.1f}% | {np.median(a[:, 0]):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
