"""Rebuild the bundled sample.wav: the speech12 keywords spoken by espeak-ng voices.

    .venv/bin/python training/samples/make_sample.py

16 kHz mono 16-bit, each word followed by a pause over faint noise (deterministic seed).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from keywire.agent.audio_io import read_wav_native, write_wav

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
VOICES = ["en-us", "en+f3", "en-gb", "en+m3", "en+f2"]
RATE = 16000


def speak(word: str, voice: str, tmp: Path) -> np.ndarray:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(raw), word], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
    return read_wav_native(out)[0].astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(12)
    parts = [rng.standard_normal(RATE) * 30]
    with tempfile.TemporaryDirectory() as d:
        for i, word in enumerate(WORDS):
            parts.append(speak(word, VOICES[i % len(VOICES)], Path(d)))
            parts.append(rng.standard_normal(int(1.2 * RATE)) * 30)
    x = np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
    out = Path(__file__).with_name("sample.wav")
    write_wav(out, x, RATE)
    print(f"wrote {out} ({len(x) / RATE:.1f} s)")


if __name__ == "__main__":
    main()
