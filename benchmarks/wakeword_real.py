"""A `keywire wakeword` model against real people: the share of real speakers' clips of the
word it finds in streams, and its false accepts per hour over real keyword-free speech.

Positives: every real clip of the word under the data folder (Speech Commands layout
`<word>/*.wav` and `_unknown_/<word>_<speaker>_nohash_N.wav`), each placed in a stream of
real keyword-free speech at the given SNRs (`keywire evaluate-stream`'s machinery, the
model's shipped settings). False accepts: every keyword-free recording strung into one
stream (0.3-1.0 s of -60 dBFS noise between recordings) through the agent's spotter in
100 ms chunks; every detection counts.

    nice -n 10 .venv/bin/python benchmarks/wakeword_real.py MODEL --word marvin \\
        --data ../shared/data --speech ../shared/data/dspspeech20_dev --speech ../shared/data/negative_speech
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from keywire.agent.model import KeywordModel
from keywire.agent.spotter import KeywordSpotter
from keywire.training import stream_eval as se
from keywire.training import streams as st
from keywire.training.hard_negatives import keyword_free_stream


def real_clips(data: Path, word: str, dst: Path) -> int:
    """Link every real clip of `word` into `dst/<word>/<speaker>_nohash_<n>.wav`."""
    (dst / word).mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(data.rglob("*.wav")):
        if f.parent.name == word:
            name = f.name
        elif f.parent.name == "_unknown_" and f.name.startswith(f"{word}_"):
            name = f.name[len(word) + 1:]
        else:
            continue
        (dst / word / name).symlink_to(f.resolve())
        n += 1
    return n


def keyword_free(folders: list[Path], word: str) -> list[Path]:
    """WAV files under the folders whose transcript (negative_speech's
    keywords_in_transcripts.json, where present) does not hold the word."""
    out = []
    for folder in folders:
        listing = folder / "keywords_in_transcripts.json"
        holds = json.loads(listing.read_text()) if listing.exists() else {}
        for f in sorted(folder.rglob("*.wav")):
            k = holds.get(str(f.relative_to(folder)), [])
            if isinstance(k, list) and word in k:
                continue
            out.append(f)
    return out


def fa_per_hour(model: KeywordModel, files: list[Path], seed: int = 0) -> dict:
    audio = keyword_free_stream(files, seed, tail_s=0.0)
    spotter = KeywordSpotter(model)
    t0 = time.process_time()
    found = []
    for i in range(0, len(audio), 1600):
        found += spotter.feed(audio[i:i + 1600])
    hours = len(audio) / 16000 / 3600
    return {"hours": round(hours, 3), "recordings": len(files), "false_accepts": len(found),
            "fa_per_hour": round(len(found) / hours, 2), "cpu_s": round(time.process_time() - t0, 1),
            "by_keyword": {k: sum(d.keyword == k for d in found) for k in sorted({d.keyword for d in found})}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--word", required=True)
    ap.add_argument("--data", type=Path, action="append", required=True, help="folder holding real clips of the word")
    ap.add_argument("--speech", type=Path, action="append", required=True, help="real keyword-free speech")
    ap.add_argument("--snr-db", default="10,20")
    ap.add_argument("--threshold", type=int, help="replace the word's shipped threshold (a variant)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    model = KeywordModel.load(a.model)
    if a.threshold is not None and a.word in model.classes:
        d = model.detection
        lst = list(d.detection_threshold_list or [d.detection_threshold] * len(model.classes))
        lst[model.classes.index(a.word)] = a.threshold
        model = dataclasses.replace(model, detection=d.replace(detection_threshold_list=tuple(lst)))
    files = keyword_free(a.speech, a.word)
    out: dict = {"model": str(a.model), "word": a.word, "detection": model.detection.to_params()}
    with tempfile.TemporaryDirectory() as tmp:
        n = sum(real_clips(d, a.word, Path(tmp)) for d in a.data) if a.word in model.classes else 0
        out["real_clips"] = n
        if n:  # no real clips of the word (e.g. "computer"): false accepts only
            clips = st.keyword_clips(tmp, [a.word])
            plan = se.EvalPlan(snr_db=tuple(float(s) for s in a.snr_db.split(",")), hours=0.02, spacing_check=())
            sset = se.build_stream_set(clips, st.BackgroundPool(files, 16000), plan)
            rep = se.evaluate(model, sset, plan)
            out["speakers"] = len({c.speaker for c in clips})
            out["recall"] = {c: round(r[a.word].recall, 3) for c, r in rep.conditions.items()}
    out["keyword_free"] = fa_per_hour(model, files)
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
