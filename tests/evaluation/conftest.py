"""Small real material for streaming-evaluation tests: espeak-ng keywords in Speech Commands
layout and a background of espeak-ng sentences plus sox-generated noise (no ../shared needed)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.speech import synthesize

VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+m7", "en-gb-x-rp+f2"]
SENTENCES = [
    "The weather today is mild with a light breeze from the west.",
    "Please remember to water the plants and feed the cat before noon.",
    "A small train crossed the valley while the children watched from the hill.",
]


@pytest.fixture(scope="session")
def sc_folder(cache_dir: Path) -> Path:
    """Speech Commands-layout folder: yes/no, six voices each, plus an _unknown_ folder."""
    root = cache_dir / "evaluation" / "sc"
    for word in ("yes", "no", "bird"):
        folder = root / (word if word != "bird" else "_unknown_")
        folder.mkdir(parents=True, exist_ok=True)
        for i, voice in enumerate(VOICES):
            speaker = voice.replace("+", "-")  # Speech Commands names: <speaker>_nohash_<n>.wav
            dst = folder / (f"{speaker}_nohash_{i}.wav" if word != "bird" else f"bird_{speaker}_nohash_{i}.wav")
            if not dst.exists():
                shutil.copy(synthesize(word, voice=voice, speed=140 + 10 * (i % 3)), dst)
    return root


@pytest.fixture(scope="session")
def background_folder(cache_dir: Path) -> Path:
    """Keyword-free speech (espeak-ng sentences) and pink/brown noise made by sox (`-R`: the
    same noise on every machine, so the figures tests read from it do not vary by run)."""
    root = cache_dir / "evaluation" / "background"
    root.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(SENTENCES):
        dst = root / f"speech_{i}.wav"
        if not dst.exists():
            shutil.copy(synthesize(text, voice=VOICES[i % len(VOICES)]), dst)
    for color in ("pinknoise", "brownnoise"):
        dst = root / f"{color}.wav"
        if not dst.exists():
            subprocess.run(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(dst), "synth", "20", color,
                            "vol", "0.1"], check=True, capture_output=True)
    return root
