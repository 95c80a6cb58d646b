"""CPU cost per audio-hour: keywire's agent pipeline vs pymicro-wakeword, same audio, one run.

    nice -n 10 .venv/bin/python benchmarks/throughput_vs_microwakeword.py \\
        --keywire training/models/speech12/speech12.tflite --minutes 10

pymicro-wakeword (PyPI, `pip install pymicro-wakeword`, the `bench` extra) runs microWakeWord's
streaming models with the TFLite-Micro audio frontend compiled in C (pymicro-features) and
the TFLite C library. keywire runs its agent pipeline: `KeywordSpotter` (MLTK frontend, in C
when keywire.agent._cfrontend is built and in numpy otherwise; `--numpy-frontend` forces
numpy), feature window, interpreter every `latency_ms`, MLTK detector). Both get the same int16
audio in the same chunk size, in the same process, and are timed with `time.process_time()`
(CPU time of all threads), after one warm-up pass over the first 10 s.

Figures: CPU-seconds per hour of audio for each detector, and keywire / pymicro-wakeword.
keywire's cost is also split into frontend and interpreter (+ detector) so it is clear where
time goes. The audio is a stream of Speech Commands keywords over background (../shared/data)
or, without ../shared, espeak-ng speech over sox noise.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from keywire.agent.frontend import Frontend
from keywire.agent.interpreter import runtime_name
from keywire.agent.model import KeywordModel
from keywire.protocol.frontend_settings import FrontendSettings
from keywire.agent.spotter import KeywordSpotter
from keywire.training import streams as st

RATE = 16000


def test_audio(data: Path, minutes: float, seed: int) -> np.ndarray:
    """`minutes` of keywords over background: a positive stream, padded with background."""
    cfg = st.StreamConfig(seed=seed, snr_db=10.0, stream_s=minutes * 60)
    sc = data / "speech_commands_v0.02_test_dev"
    if sc.is_dir():
        clips = st.keyword_clips(sc)
        bg = st.audio_files([data / "background_noise", sc / "_unknown_"])
    else:  # a fresh machine: espeak-ng words and sentences, sox noise
        tmp = Path(tempfile.mkdtemp(prefix="keywire-bench-"))
        for w in ("yes", "no", "on", "off"):
            for v in ("en-us", "en-gb"):
                (tmp / "sc" / w).mkdir(parents=True, exist_ok=True)
                subprocess.run(["espeak-ng", "-v", v, "-w", str(tmp / "raw.wav"), w], check=True)
                subprocess.run(["sox", str(tmp / "raw.wav"), "-r", "16000", "-c", "1", "-b", "16",
                                str(tmp / "sc" / w / f"{v}_nohash_0.wav")], check=True)
        subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(tmp / "noise.wav"), "synth", "60",
                        "pinknoise", "vol", "0.05"], check=True)
        clips, bg = st.keyword_clips(tmp / "sc"), [tmp / "noise.wav"]
    pool = st.BackgroundPool(bg)
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    parts: list[np.ndarray] = []
    total = 0
    while total < n:
        take = [clips[i] for i in rng.permutation(len(clips))[:200]]
        for s in st.build_positive_streams(take, pool, cfg):
            parts.append(s.samples)
            total += len(s.samples)
    return np.concatenate(parts)[:n]


def cpu_time(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def run_pymicro(audio: np.ndarray, chunk: int, model_name: str) -> dict:
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    mww = MicroWakeWord.from_builtin(Model(model_name))
    feats = MicroWakeWordFeatures()

    def go(x: np.ndarray) -> int:
        fired = 0
        for i in range(0, len(x), chunk):
            for f in feats.process_streaming(x[i:i + chunk].tobytes()):
                if mww.process_streaming(f):
                    fired += 1
        return fired

    go(audio[: 10 * RATE])  # warm-up
    mww.reset()
    feats.reset()
    cpu, fired = cpu_time(lambda: go(audio))
    # frontend alone (features only) for the split
    feats2 = MicroWakeWordFeatures()
    fe_cpu, _ = cpu_time(lambda: sum(1 for i in range(0, len(audio), chunk)
                                     for _ in feats2.process_streaming(audio[i:i + chunk].tobytes())))
    return {"detector": f"pymicro-wakeword {model_name}", "cpu_s": cpu, "frontend_cpu_s": fe_cpu,
            "detections": fired, "stride_ms": 10 * mww.stride}


def run_keywire(audio: np.ndarray, chunk: int, path: Path, native: Optional[bool] = None) -> dict:
    model = KeywordModel.load(path)
    spot = KeywordSpotter(model, native_frontend=native)

    def go(x: np.ndarray) -> int:
        n = 0
        for i in range(0, len(x), chunk):
            n += len(spot.feed(x[i:i + chunk]))
        return n

    go(audio[: 10 * RATE])
    spot.reset()
    inf0 = spot.stats.inferences
    cpu, fired = cpu_time(lambda: go(audio))
    inferences = spot.stats.inferences - inf0
    fe = Frontend(model.frontend, native=native)
    fe_cpu, _ = cpu_time(lambda: sum(len(fe.process(audio[i:i + chunk])) for i in range(0, len(audio), chunk)))
    return {"detector": f"keywire {model.name}", "cpu_s": cpu, "frontend_cpu_s": fe_cpu, "detections": fired,
            "inferences": inferences, "latency_ms": model.detection.latency_ms,
            "input": list(model.input.shape)}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keywire", action="append", default=[], help="keywire .tflite models (repeat)")
    ap.add_argument("--microwakeword", action="append", default=None,
                    help="pymicro-wakeword built-in models (default okay_nabu)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--chunk-ms", type=int, default=100, help="audio chunk size both detectors get")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--numpy-frontend", action="store_true", help="keywire with its numpy frontend (the fallback)")
    args = ap.parse_args(argv)
    native = False if args.numpy_frontend else None
    audio = test_audio(Path(args.data), args.minutes, args.seed)
    hours = len(audio) / RATE / 3600
    chunk = RATE * args.chunk_ms // 1000
    rows = [run_pymicro(audio, chunk, m) for m in (args.microwakeword or ["okay_nabu"])]
    rows += [run_keywire(audio, chunk, Path(p), native) for p in args.keywire]
    ref = rows[0]["cpu_s"]
    print(f"{len(audio) / RATE / 60:.1f} min of audio, {args.chunk_ms} ms chunks, {platform.processor() or platform.machine()}, "
          f"keywire interpreter: {runtime_name()}, keywire frontend: "
          f"{'C' if Frontend(FrontendSettings(), native=native).native else 'numpy'}")
    print(f"| detector | CPU-s per audio-hour | of which frontend | ratio to {rows[0]['detector']} | detections |")
    print("|---|---|---|---|---|")
    for r in rows:
        r["cpu_s_per_audio_hour"] = r["cpu_s"] / hours
        r["frontend_cpu_s_per_audio_hour"] = r["frontend_cpu_s"] / hours
        r["ratio"] = r["cpu_s"] / ref if ref else float("nan")
        print(f"| {r['detector']} | {r['cpu_s_per_audio_hour']:.1f} | {r['frontend_cpu_s_per_audio_hour']:.1f} | "
              f"{r['ratio']:.2f} | {r['detections']} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"audio_minutes": args.minutes, "chunk_ms": args.chunk_ms,
                                               "runtime": runtime_name(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
