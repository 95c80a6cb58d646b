"""Synthetic speech: how fast `keywire dataset synth` renders clips, and whether a model trained
on real speech hears the synthetic words as those words.

    .venv/bin/python benchmarks/synth_speech.py [--clips 60] [--jobs 1] [--model M.tflite]

Speed: clips per second for `--words on,off` with all default voices (espeak-ng accents and
variants, flite), one clip render = TTS + sox + fitting into 1 s. Recognition: the MLTK
pretrained on/off model (../shared/data/mltk_models/keyword_spotting_on_off_v3.tflite, or
--model) classifies synthetic keyword clips and near-miss negatives; the share it calls
`on`/`off` shows how real-sounding the keywords are and how hard the near-misses are.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO.parent / "shared" / "data" / "mltk_models" / "keyword_spotting_on_off_v3.tflite"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=60, help="keyword clips per word")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = ap.parse_args()

    from keywire.agent.audio_io import read_wav_native
    from keywire.training.synth import SynthConfig, synthesize_dataset

    with tempfile.TemporaryDirectory(prefix="keywire-bench-synth-") as tmp:
        out = Path(tmp) / "set"
        config = SynthConfig(words=("on", "off"), out=out, per_word=args.clips, per_negative=args.clips // 2,
                             near_misses=3, common_negatives=2, seed=args.seed, jobs=args.jobs)
        t0 = time.perf_counter()
        report = synthesize_dataset(config)
        dt = time.perf_counter() - t0
        n = sum(report.counts.values())
        print(report.summary())
        print(f"render: {n} clips in {dt:.1f} s = {n / dt:.1f} clips/s with --jobs {args.jobs}")
        if not args.model.exists():
            print(f"recognition: skipped ({args.model} not present)")
            return 0
        from keywire.agent.frontend import compute_features
        from keywire.agent.model import KeywordModel

        model = KeywordModel.load(args.model)
        fe = model.frontend
        print(f"recognition by {args.model.name} {list(model.classes)} (top-1 over whole 1 s clips):")
        for folder in sorted(report.counts, key=lambda f: (f not in model.classes, f)):
            preds: Counter = Counter()
            for p in sorted((out / folder).glob("*.wav")):
                x = read_wav_native(p)[0]
                clip = np.zeros(fe.sample_length, dtype=np.int16)
                clip[: min(len(x), len(clip))] = x[: len(clip)]
                preds[model.classes[int(np.argmax(model.infer(compute_features(clip, fe))))]] += 1
            total = sum(preds.values())
            kind = "keyword" if folder in model.classes else report.negatives.get(folder, "negative")
            shares = ", ".join(f"{c} {100 * k / total:.0f}%" for c, k in preds.most_common())
            print(f"  {folder:<8} ({kind}, {total} clips): {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
