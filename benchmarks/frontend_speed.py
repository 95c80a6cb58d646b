"""Frontend speed: frames/s and CPU-seconds per audio-hour, streaming and batch.

Usage: python benchmarks/frontend_speed.py [--seconds 60] [--wav FILE ...] [--repeat 3] [--impl c numpy]

Configurations: MLTK's on_off_v3 (30/10 ms, 104 channels, DC notch, noise reduction) and
micro_speech (30/20 ms, 40 channels, noise reduction + PCAN), plus the MFCC option. Streaming
runs feed the audio in 10 ms, 100 ms (the agent's default chunk_ms) and 1 s chunks through one
`Frontend`; the batch run is `compute_features_batch` over 1 s clips (training extraction).
Each runs with the compiled frontend (`c`, keywire.agent._cfrontend) and the numpy one (the
reference and fallback); MFCC is numpy either way.
CPU time is process time (all threads), best of --repeat runs. The audio defaults to generated
speech-band noise bursts; the frontend's cost does not depend on what is said.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keywire.agent.audio_io import read_wav_native  # noqa: E402
from keywire.agent.frontend import Frontend, compute_features_batch  # noqa: E402
from keywire.protocol.frontend_settings import FrontendSettings  # noqa: E402

CONFIGS = {
    "on_off_v3": FrontendSettings(
        window_size_ms=30, window_step_ms=10, filterbank_n_channels=104, noise_reduction_enable=True,
        noise_reduction_min_signal_remaining=0.4, dc_notch_filter_enable=True,
        quantize_dynamic_scale_enable=True, fft_length=512),
    "micro_speech": FrontendSettings(
        window_size_ms=30, window_step_ms=20, filterbank_n_channels=40, noise_reduction_enable=True,
        pcan_enable=True, fft_length=512),
    "mfcc_13": FrontendSettings(window_size_ms=30, window_step_ms=20, filterbank_n_channels=40,
                                frontend_type="mfcc", mfcc_n_coefficients=13),
}


def generated_audio(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Band-limited noise bursts over quiet background noise (speech-like level changes)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = rng.standard_normal(n) * 30.0
    pos = 0
    while pos < n:
        length = int(rng.integers(4000, 12000))
        burst = np.cumsum(rng.standard_normal(length)) * 40.0
        burst -= np.convolve(burst, np.ones(64) / 64, mode="same")
        x[pos:pos + length] += burst[: max(0, min(length, n - pos))] * np.hanning(length)[: max(0, min(length, n - pos))]
        pos += length + int(rng.integers(4000, 16000))
    return np.clip(x, -32768, 32767).astype(np.int16)


def read_wavs(paths: list[str]) -> np.ndarray:
    parts = []
    for p in paths:
        x, rate = read_wav_native(p)
        if rate != 16000:
            raise SystemExit(f"{p}: need a 16 kHz WAV")
        parts.append(x)
    return np.concatenate(parts).astype(np.int16)


def stream_run(settings: FrontendSettings, audio: np.ndarray, chunk: int, native: bool) -> tuple[float, int]:
    fe = Frontend(settings, native=native)
    frames = 0
    t0 = time.process_time()
    for pos in range(0, len(audio), chunk):
        frames += len(fe.process(audio[pos:pos + chunk]))
    return time.process_time() - t0, frames


def batch_run(settings: FrontendSettings, audio: np.ndarray, batch: int, native: bool) -> tuple[float, int]:
    n = len(audio) // 16000
    clips = audio[: n * 16000].reshape(n, 16000)
    t0 = time.process_time()
    frames = 0
    for i in range(0, n, batch):
        frames += compute_features_batch(clips[i:i + batch], settings, native=native).shape[0] * settings.n_frames
    return time.process_time() - t0, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="generated audio length")
    ap.add_argument("--wav", nargs="*", default=[], help="16 kHz mono 16-bit WAV files to use instead")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--impl", nargs="*", default=["c", "numpy"], choices=["c", "numpy"])
    args = ap.parse_args()

    audio = read_wavs(args.wav) if args.wav else generated_audio(args.seconds)
    audio_s = len(audio) / 16000
    print(f"# frontend_speed: {audio_s:.0f} s of audio, {platform.machine()} {platform.processor() or ''}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"{'config':<13} {'impl':<6} {'mode':<16} {'frames/s':>10} {'CPU-s/audio-h':>14} {'% of a core':>12}")
    for name in args.configs:
        s = CONFIGS[name]
        for impl in args.impl:
            if impl == "c" and s.frontend_type == "mfcc":
                continue    # MFCC has no C implementation
            native = impl == "c"
            runs = [("stream 10 ms", lambda: stream_run(s, audio, 160, native)),
                    ("stream 100 ms", lambda: stream_run(s, audio, 1600, native)),
                    ("stream 1 s", lambda: stream_run(s, audio, 16000, native)),
                    ("batch 1 s x 32", lambda: batch_run(s, audio, 32, native)),
                    ("batch 1 s x 256", lambda: batch_run(s, audio, 256, native))]
            for label, fn in runs:
                best = min((fn() for _ in range(args.repeat)), key=lambda r: r[0])
                cpu, frames = best
                cpu = max(cpu, 1e-9)
                per_hour = cpu / audio_s * 3600
                print(f"{name:<13} {impl:<6} {label:<16} {frames / cpu:>10.0f} {per_hour:>14.1f} "
                      f"{per_hour / 36:>11.2f}%")


if __name__ == "__main__":
    main()
