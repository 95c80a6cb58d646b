"""False accepts per hour over real keyword-free speech, through the agent's streaming spotter.

Each source is a folder of keyword-free recordings (e.g. `../shared/data/dspspeech20_dev/spk05`:
isolated words, or `negative_speech` files whose transcript holds no keyword), strung into
one stream with 0.3-1.0 s of faint noise (-60 dBFS) between recordings, as a device would
hear people talking near it. Every model runs over it in 100 ms chunks with its own shipped
detection settings (`KeywordSpotter`); every detection is a false accept. The score trace
is kept, so the same stream is also replayed through the agent's `Detector` at other
thresholds (`--thresholds`) without running the model again.

    nice -n 10 .venv/bin/python benchmarks/fa_per_hour.py MODEL [MODEL ...] \\
        --source ../shared/data/dspspeech20_dev/spk05 --source ../shared/data/dspspeech20_dev/spk06

MODEL: a .tflite or a keywire model directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from keywire.agent.detector import Detector
from keywire.agent.spotter import KeywordSpotter
from keywire.training import hard_negatives
from keywire.training.evaluate import load_any_model


def keyword_free_stream(folders: list[str], seed: int = 0, rate: int = 16000) -> tuple[np.ndarray, int]:
    """(int16 stream, recordings) of every WAV in the folders, in name order, with gaps."""
    files = [p for f in folders for p in sorted(Path(f).rglob("*.wav"))]
    return hard_negatives.keyword_free_stream(files, seed, rate), len(files)


def run(model_path: str, audio: np.ndarray, thresholds: list[int]) -> dict:
    """Detections at the shipped settings and at each threshold in `thresholds`."""
    model = load_any_model(model_path)
    trace: list[tuple[int, np.ndarray]] = []
    spotter = KeywordSpotter(model, on_scores=lambda t, s: trace.append((int(t), np.array(s, np.uint8))))
    t0 = time.process_time()
    found = []
    for i in range(0, len(audio), 1600):
        found += spotter.feed(audio[i:i + 1600])
    cpu = time.process_time() - t0
    hours = len(audio) / 16000 / 3600
    det = model.detection
    out = {"model": model_path, "hours": round(hours, 3), "cpu_s": round(cpu, 1),
           "threshold": det.detection_threshold, "false_accepts": len(found),
           "fa_per_hour": round(len(found) / hours, 2),
           "words": dict(sorted({d.keyword: sum(1 for e in found if e.keyword == d.keyword) for d in found}.items())),
           "sweep": {}}
    for th in thresholds:
        d = Detector(model.classes, dataclasses.replace(det, detection_threshold=th, detection_threshold_list=None))
        n = sum(1 for t, s in trace if d.process(t, s).detected)
        out["sweep"][th] = round(n / hours, 2)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--source", action="append", required=True, help="folder of keyword-free WAVs (repeat)")
    ap.add_argument("--thresholds", default="150,170,185,200,215,230,240")
    a = ap.parse_args(argv)
    audio, n = keyword_free_stream(a.source)
    print(f"stream: {n} recordings, {len(audio) / 16000 / 3600:.3f} h from {a.source}", flush=True)
    ths = [int(v) for v in a.thresholds.split(",") if v]
    for m in a.models:
        print(json.dumps(run(m, audio, ths)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
