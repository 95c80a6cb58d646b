"""Cost of speech-embedding heads: CPU-seconds per audio-hour and RSS with one and with three
heads on one shared embedding stream, against pymicro-wakeword in the same run.

    nice -n 10 .venv/bin/python benchmarks/embedding_pipeline.py --minutes 3 [--head H.tflite ...] [--whole-heads]

Every configuration runs in its own child process on the same int16 audio (the stream of
benchmarks/throughput_vs_microwakeword.py: Speech Commands keywords over background from
../shared/data, or espeak-ng speech over noise without it), fed in the same chunk size, timed
with `time.process_time()` after a warm-up pass over the first 10 s; RSS is the child's peak
(VmHWM) after the run. Rows: pymicro-wakeword (okay_nabu), the embedding stream alone
(`EmbeddingFrontend`), keywire's `KeywordSpotter` with one head and with three heads, each
with 1 and with K (`--embeddings-per-call`) embeddings per call of the embedding model; last,
the stream alone with both feature models run whole (`segmented=False`: the mel model once
per block, the embedding model on each run of windows; how it ran before 2026-12-04, night). Without
`--head`, the tiny test heads (tests/fixtures/embedding_head.py, cached under .cache/tests)
are used: the cost of a head depends on its size, the shared stream's does not.
`--repeat R` runs the whole plan R times, one configuration after another in turn, and prints
each configuration's median (with its range), and the extra head's share as the median of the
R runs' own shares: on a shared machine one run's rows can differ by more than a head costs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

RATE = 16000


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def child(kind: str, audio_path: str, chunk: int, heads: list[str], k: int, whole: bool = False) -> dict:
    """One configuration in a fresh process: CPU seconds over the audio and peak RSS."""
    audio = np.load(audio_path)
    if kind == "pymicro":
        from throughput_vs_microwakeword import run_pymicro
        row = run_pymicro(audio, chunk, "okay_nabu")
        return {"config": row["detector"], "cpu_s": row["cpu_s"], "rss_mb": _peak_rss_mb()}
    if kind in ("stream", "whole"):
        from keywire.agent.frontend.embedding import EmbeddingFrontend
        fe = EmbeddingFrontend(k, segmented=kind == "stream")
        step = lambda x: len(fe.process(x))   # noqa: E731
        reset = fe.reset
        name = (f"embedding stream alone, {k} per call" if fe.segmented else
                f"embedding stream alone, whole models, {k} per call")
    else:
        from keywire.agent.model import KeywordModel
        from keywire.agent.spotter import KeywordSpotter
        models = [KeywordModel.load(p) for p in heads]
        spot = KeywordSpotter(models[0], embeddings_per_call=k, step_heads=not whole)
        for m in models[1:]:
            spot.add_model(m)
        step = lambda x: len(spot.feed(x))   # noqa: E731
        reset, name = spot.reset, (f"keywire, {len(models)} embedding head{'s' if len(models) > 1 else ''}, "
                                   f"{k} per call{', whole windows' if whole else ''}")

    def go(x: np.ndarray) -> int:
        return sum(step(x[i:i + chunk]) for i in range(0, len(x), chunk))

    go(audio[:10 * RATE])
    reset()
    t0 = time.process_time()
    fired = go(audio)
    return {"config": name, "cpu_s": time.process_time() - t0, "detections": fired, "rss_mb": _peak_rss_mb()}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--head", action="append", default=[], help="embedding head .tflite (repeat; 3 are used)")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--embeddings-per-call", type=int, default=4,
                    help="K of the agent's setting (rows with 1 and with K); default 4, the agent's default")
    ap.add_argument("--whole-heads", action="store_true",
                    help="run heads that carry a step model over the whole window every inference")
    ap.add_argument("--repeat", type=int, default=1, help="run the whole plan this many times, in turn; medians")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, audio_path, chunk, heads, k, whole = args.child
        print(json.dumps(child(kind, audio_path, int(chunk), json.loads(heads), int(k), whole == "1")))
        return 0
    heads = args.head
    if not heads:
        from tests.fixtures.embedding_head import build_embedding_heads
        from tests.fixtures.paths import CACHE
        heads = [str(p) for p in build_embedding_heads(CACHE)]
    three = (heads * 3)[:3]
    from throughput_vs_microwakeword import test_audio
    audio = test_audio(Path(args.data), args.minutes, 0)
    hours = len(audio) / RATE / 3600
    chunk = RATE * args.chunk_ms // 1000
    tmp = Path(tempfile.mkdtemp(prefix="keywire-emb-bench-")) / "audio.npy"
    np.save(tmp, audio)
    k = args.embeddings_per_call
    ks = tuple(dict.fromkeys((1, k)))
    plan = [("pymicro", [], 1)] + [(kind, hs, kk) for kk in ks
                                   for kind, hs in (("stream", []), ("spotter", three[:1]), ("spotter", three))]
    plan += [("whole", [], kk) for kk in ks]
    runs: list[list[dict]] = []
    for _ in range(max(1, args.repeat)):
        runs.append([])
        for kind, hs, kk in plan:
            r = subprocess.run([sys.executable, __file__, "--child", kind, str(tmp), str(chunk), json.dumps(hs),
                                str(kk), "1" if args.whole_heads else "0"],
                               capture_output=True, text=True, check=True)
            runs[-1].append(json.loads(r.stdout.strip().splitlines()[-1]))
    rows = [dict(run[0]) for run in zip(*runs)]
    for i, row in enumerate(rows):
        cpu = [run[i]["cpu_s"] for run in runs]
        row.update(cpu_s=float(np.median(cpu)), cpu_s_min=min(cpu), cpu_s_max=max(cpu),
                   rss_mb=max(run[i]["rss_mb"] for run in runs))
    ref = rows[0]["cpu_s"]
    print(f"{len(audio) / RATE / 60:.1f} min of audio, {args.chunk_ms} ms chunks, {len(runs)} run(s), "
          "medians; heads: " + ", ".join(Path(h).name for h in three))
    print(f"| configuration | CPU-s per audio-hour | range | ratio to {rows[0]['config']} | peak RSS MB |")
    print("|---|---|---|---|---|")
    for r in rows:
        r["cpu_s_per_audio_hour"] = r["cpu_s"] / hours
        r["ratio"] = r["cpu_s"] / ref if ref else float("nan")
        print(f"| {r['config']} | {r['cpu_s_per_audio_hour']:.1f} | {r['cpu_s_min'] / hours:.1f}-"
              f"{r['cpu_s_max'] / hours:.1f} | {r['ratio']:.2f} | {r['rss_mb']:.0f} |")
    for i in range(1, 1 + 3 * len(ks), 3):       # (stream, one head, three heads) per k
        shares = [100 * (run[i + 2]["cpu_s"] - run[i + 1]["cpu_s"]) / 2 / run[i]["cpu_s"] for run in runs]
        extra = [(run[i + 2]["cpu_s"] - run[i + 1]["cpu_s"]) / 2 / hours for run in runs]
        print(f"{rows[i]['config']}: each extra head {np.median(extra):.1f} CPU-s per audio-hour, "
              f"{np.median(shares):.1f}% of the shared stream's (runs: "
              + ", ".join(f"{v:.1f}%" for v in shares) + ")")
    if args.json:
        Path(args.json).write_text(json.dumps({"audio_minutes": args.minutes, "rows": rows, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
