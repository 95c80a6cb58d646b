"""Agent pipeline cost on a long stream: real-time factor, CPU per audio-hour by stage, peak RSS.

    .venv/bin/python benchmarks/agent_pipeline.py [--model M.tflite] [--minutes 10]

The stream is synthesized speech (espeak-ng, several voices) over background noise,
written once to a WAV. The script then runs, in a child process so memory is the agent's
own, the same streaming pipeline `keywire-agent run` uses (file source -> spotter ->
sinks) as fast as the CPU allows, timing each stage with process CPU time.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "house", "seven", "marvin"]


def build_stream(minutes: float, out: Path) -> Path:
    from tests.fixtures.speech import read_wav, synthesize, write_wav

    if out.exists():
        return out
    rate, rng = 16000, np.random.default_rng(7)
    n = int(minutes * 60 * rate)
    x = (rng.standard_normal(n) * 32767 * 10 ** (-50 / 20)).astype(np.float32)
    voices = ["en-us", "en+f3", "en-gb", "en+m3", "en+f4"]
    pos = rate
    while pos < n - 2 * rate:
        word = WORDS[rng.integers(len(WORDS))]
        clip, _ = read_wav(synthesize(word, voice=voices[rng.integers(len(voices))]))
        x[pos:pos + len(clip)] += clip[: n - pos]
        pos += len(clip) + int(rng.uniform(1.0, 4.0) * rate)
    return write_wav(out, np.clip(x, -32768, 32767).astype(np.int16))


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the forked parent's pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(model_path: str, wav: str, impl: str = "auto") -> dict:
    """Runs in a fresh process: the agent's pipeline with per-stage CPU accounting."""
    from keywire.agent.model import KeywordModel
    from keywire.agent.sources import FileSource
    from keywire.agent.spotter import KeywordSpotter

    model = KeywordModel.load(model_path)
    spotter = KeywordSpotter(model, native_frontend=False if impl == "numpy" else None)
    cpu = {"frontend": 0.0, "inference": 0.0}

    def timed(fn, stage: str):
        """`fn`, adding the CPU seconds of each call to `cpu[stage]`."""
        def wrapper(x):
            t = time.process_time()
            try:
                return fn(x)
            finally:
                cpu[stage] += time.process_time() - t
        return wrapper

    spotter.frontend.process = timed(spotter.frontend.process, "frontend")  # type: ignore[method-assign]
    model.infer = timed(model.infer, "inference")  # type: ignore[method-assign]
    src = FileSource(Path(wav), model.frontend.sample_rate_hz, realtime=False)
    src.open()
    chunk = model.frontend.sample_rate_hz // 10
    samples, detections = 0, 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while (x := src.read(chunk)) is not None:
        samples += len(x)
        detections += len(spotter.feed(x))
    wall, total = time.perf_counter() - wall0, time.process_time() - cpu0
    audio_s = samples / model.frontend.sample_rate_hz
    per_hour = 3600.0 / audio_s
    return {
        "model": model.name, "classes": len(model.classes), "audio_s": audio_s,
        "inferences": spotter.stats.inferences, "detections": detections,
        "real_time_factor": wall / audio_s,
        "cpu_s_per_audio_hour": {
            "total": total * per_hour, "frontend": cpu["frontend"] * per_hour,
            "inference": cpu["inference"] * per_hour,
            "source_detector_rest": (total - cpu["frontend"] - cpu["inference"]) * per_hour},
        "cpu_percent_of_one_core_realtime": 100.0 * total / audio_s,
        "peak_rss_mb": peak_rss_mb(),
        "runtime": __import__("keywire.agent.interpreter", fromlist=["x"]).runtime_name(),
        "frontend_impl": "C" if spotter.frontend.native else "numpy",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model .tflite (default: bundled speech12)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--numpy-frontend", action="store_true", help="the numpy frontend (the fallback), not C")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child)))
        return
    model = a.model
    if not model:
        from keywire.training.bundled import model_path

        model = str(model_path("speech12"))
    wav = build_stream(a.minutes, REPO / ".cache" / "bench" / f"stream_{a.minutes:g}min.wav")
    impl = "numpy" if a.numpy_frontend else "auto"
    out = subprocess.run([sys.executable, __file__, "--child", model, str(wav), impl], capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    c = r["cpu_s_per_audio_hour"]
    print(f"model {r['model']} ({r['classes']} classes), runtime {r['runtime']}, frontend {r['frontend_impl']}, "
          f"{r['audio_s'] / 60:.1f} min of audio, {r['inferences']} inferences, {r['detections']} detections")
    print(f"real-time factor:            {r['real_time_factor']:.4f}")
    print(f"CPU of one core in real time: {r['cpu_percent_of_one_core_realtime']:.2f} %")
    print(f"CPU-seconds per audio-hour:  total {c['total']:.1f}  frontend {c['frontend']:.1f}  "
          f"inference {c['inference']:.1f}  source+detector+rest {c['source_detector_rest']:.1f}")
    print(f"peak RSS:                    {r['peak_rss_mb']:.1f} MB")


if __name__ == "__main__":
    main()
