"""Why streams are harder than clips: accuracy on held-out keyword clips mixed over one kind of
background at a time, at several SNRs, exactly as the evaluation streams mix them
(`augment.stream_mix`: a bed of background, the clip's voiced part `snr` dB above it, the
frontend warmed up on 1 s of the bed). Usage (from the repository root):

    .venv/bin/python benchmarks/mixed_clip_accuracy.py MODEL.tflite [MODEL ...] [--data ../shared/data]

Clips: the keyword clips of the recipes' test speakers (the streams' evaluation positives).
Backgrounds: the six noise recordings; keyword-free TTS passages (compare_mltk's evaluation
seeds); the test speakers' `_unknown_` words (real speech of other words).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_mltk as cm  # noqa: E402  (material and speaker split shared with the stream benchmark)

from keywire.agent.frontend import compute_features_batch  # noqa: E402
from keywire.agent.model import KeywordModel  # noqa: E402
from keywire.training.audio import fit_length, load_clip  # noqa: E402
from keywire.training.augment import stream_bed_pool, stream_mix  # noqa: E402
from keywire.training.recipe import AugmentationSettings  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default=".cache/bench/streaming", help="where compare_mltk keeps its TTS passages")
    ap.add_argument("--snr", type=float, nargs="+", default=[20.0, 10.0, 0.0])
    args = ap.parse_args(argv)
    data = Path(args.data)
    sc = data / "speech_commands_v0.02_test_dev"
    clips = cm.split_clips(sc, "test")
    tts = [cm.tts_passages(Path(args.out) / "tts", s) for s in (11, 13)]
    words = [f for f in sorted((sc / "_unknown_").glob("*.wav")) if cm._short_split(f) == "test"]
    pools = {"noise": stream_bed_pool([str(f) for f in sorted((data / "background_noise").glob("*.wav"))], [], [], 16000),
             "tts": stream_bed_pool([], [str(f) for f in tts], [], 16000),
             "words": stream_bed_pool([], [], [str(f) for f in words], 16000)}
    models = [KeywordModel.load(m) for m in args.models]
    audio = [load_clip(c.path, 16000) for c in clips]
    print(f"{len(clips)} keyword clips; columns: " + ", ".join(args.models))
    print(f"{'clean':>16}" + "".join(f"  {_accuracy(m, np.stack([_fit(a) for a in audio]), clips):6.1f}%"
                                      for m in models))
    for snr in args.snr:
        a = AugmentationSettings(warmup_ms=1000, stream_probability=1.0, stream_snr_db=(snr, snr), time_shift_ms=0,
                                 loudness_db=(0.0, 0.0), speed=(1.0, 1.0), pitch_semitones=(0.0, 0.0))
        for name, pool in pools.items():
            rng = np.random.default_rng(0)
            waves = np.stack([stream_mix(x, rng, a, pool, 16000, 16000) for x in audio])
            print(f"{name:>6} at {snr:4.0f} dB" + "".join(f"  {_accuracy(m, waves, clips):6.1f}%" for m in models))
    return 0


def _fit(x: np.ndarray) -> np.ndarray:
    return fit_length(x, 16000)


def _accuracy(model: KeywordModel, waves: np.ndarray, clips: list) -> float:
    fe = model.frontend
    feats = compute_features_batch(waves, fe)[:, -fe.n_frames:]
    cls = list(model.classes)
    return 100.0 * float(np.mean([int(np.argmax(model.infer(f))) == cls.index(c.keyword) for f, c in zip(feats, clips)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
