"""Score traces of a stream, and the detections replayed from them.

The expensive part of a streaming evaluation, frontend + interpreter, runs once per stream
through the agent's own `KeywordSpotter` (its `on_scores` hook records the uint8 scores of
every inference with their stream time). Everything that depends on detection settings is
then replayed from those scores: `replay()` drives the agent's `Detector` (exact MLTK
semantics), and `averaged_top()` is a vectorised form of the Detector's averaging (tested
equal to it) which, with the same threshold/suppression rule (`detect_events`,
`single_class_detections`), makes threshold sweeps cheap.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from keywire.agent.detector import MAX_RESULTS, Detector
from keywire.protocol.errors import ConfigError
from keywire.agent.model import KeywordModel
from keywire.protocol.detection import DetectionSettings
from keywire.agent.spotter import KeywordSpotter

from .streams import Occurrence, Stream


# ----------------------------------------------------------------------------- score traces
@dataclass(frozen=True)
class ScoreTrace:
    """Every inference of one stream: stream time (ms) and uint8 scores per class."""

    stream: str
    kind: str
    duration_s: float
    times_ms: np.ndarray = field(repr=False, compare=False)
    scores: np.ndarray = field(repr=False, compare=False)  # uint8 [n, classes]
    occurrences: tuple[Occurrence, ...] = ()
    snr_db: Optional[float] = None


def collect_scores(model: KeywordModel, stream: Stream, chunk_samples: int = 8000,
                   detection: Optional[DetectionSettings] = None) -> ScoreTrace:
    """Run `stream` through a fresh agent `KeywordSpotter` as fast as possible, recording the
    scores of every inference. The stream must be at the model's sample rate."""
    if stream.sample_rate != model.frontend.sample_rate_hz:
        raise ConfigError(f"stream {stream.name} is {stream.sample_rate} Hz, the model wants "
                          f"{model.frontend.sample_rate_hz} Hz")
    times: list[int] = []
    scores: list[np.ndarray] = []

    def hook(now_ms: int, s: np.ndarray) -> None:
        times.append(now_ms)
        scores.append(s)

    spotter = KeywordSpotter(model, detection, on_scores=hook)
    try:
        x = stream.samples
        for i in range(0, len(x), chunk_samples):
            spotter.feed(x[i:i + chunk_samples])
    finally:
        spotter.close()
    arr = np.stack(scores).astype(np.uint8) if scores else np.zeros((0, len(model.classes)), np.uint8)
    return ScoreTrace(stream=stream.name, kind=stream.kind, duration_s=stream.duration_s,
                      times_ms=np.asarray(times, dtype=np.int64), scores=arr,
                      occurrences=stream.occurrences, snr_db=stream.snr_db)


def merge_traces(traces: Sequence[ScoreTrace], gap_ms: int = 60_000) -> ScoreTrace:
    """One trace holding all of `traces` back to back, `gap_ms` apart (times and ground truth
    shifted). With the gap longer than any averaging window and suppression period, detection
    on the merged trace equals detection on each trace from a fresh Detector, so sweeps need
    one vectorised pass instead of one per stream. `duration_s` is the sum of the real
    durations (the gaps hold no audio)."""
    if not traces:
        raise ConfigError("no score traces to merge")
    times, scores, occ = [], [], []
    offset = 0
    for tr in traces:
        times.append(tr.times_ms + offset)
        scores.append(tr.scores)
        occ.extend(dataclasses.replace(o, start_s=o.start_s + offset / 1000, end_s=o.end_s + offset / 1000)
                   for o in tr.occurrences)
        offset += int(math.ceil(tr.duration_s * 1000)) + gap_ms
    kinds = {tr.kind for tr in traces}
    return ScoreTrace(stream="+".join(tr.stream for tr in traces)[:200], kind=kinds.pop() if len(kinds) == 1 else "mixed",
                      duration_s=sum(tr.duration_s for tr in traces), times_ms=np.concatenate(times),
                      scores=np.concatenate(scores), occurrences=tuple(occ),
                      snr_db=traces[0].snr_db)


# ----------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class Event:
    """A replayed detection."""

    time_ms: int
    class_index: int
    score: int


def replay(trace: ScoreTrace, classes: Sequence[str], settings: DetectionSettings) -> list[Event]:
    """Detections the agent's `Detector` raises on the recorded scores (fresh state)."""
    det = Detector(classes, settings)
    out = []
    for t, s in zip(trace.times_ms.tolist(), trace.scores):
        r = det.process(t, s)
        if r.detected:
            out.append(Event(t, r.class_index, r.score))
    return out


def detect_events(trace: ScoreTrace, classes: Sequence[str], settings: DetectionSettings) -> list[Event]:
    """Same events as `replay()` (tested equal), fast: the averaging is vectorised and the
    Detector's threshold/label/suppression rule runs only on steps above a threshold."""
    settings.validate(len(classes))
    top, score = averaged_top(trace, settings.average_window_duration_ms, settings.minimum_count)
    thr = np.array([settings.threshold_for(i) for i in range(len(classes))], dtype=np.int64)
    keyword = np.array([not c.startswith("_") for c in classes])
    safe = np.maximum(top, 0)
    cand = np.nonzero((top >= 0) & (score > thr[safe]) & keyword[safe])[0]
    out: list[Event] = []
    last_class, last_time = -1, 0
    times = trace.times_ms
    for i in cand.tolist():
        c, t = int(top[i]), int(times[i])
        if c != last_class or t - last_time > settings.suppression_ms:
            out.append(Event(t, c, int(score[i])))
            last_class, last_time = c, t
    return out


def averaged_top(trace: ScoreTrace, window_ms: int, minimum_count: int) -> tuple[np.ndarray, np.ndarray]:
    """(top class, its averaged score) after every inference, as the `Detector` computes them
    (-1 / 0 while fewer than `minimum_count` results are in the window). Vectorised; falls back
    to the `Detector` itself when its 50-result ring could fill up."""
    t, s = trace.times_ms, trace.scores
    n = len(t)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if minimum_count == 0:
        avg = s.astype(np.int64)
        return np.argmax(avg, axis=1), avg.max(axis=1)
    first = np.searchsorted(t, t - window_ms, side="left")  # oldest kept: time >= now - window
    count = np.arange(n) - first + 1
    if count.max() >= MAX_RESULTS:
        return _averaged_top_by_detector(trace, window_ms, minimum_count)
    csum = np.vstack([np.zeros((1, s.shape[1]), np.int64), np.cumsum(s, axis=0, dtype=np.int64)])
    avg = (csum[1:] - csum[first]) // count[:, None]
    top = np.argmax(avg, axis=1)
    score = avg[np.arange(n), top]
    few = count < minimum_count
    return np.where(few, -1, top), np.where(few, 0, score)


def _averaged_top_by_detector(trace: ScoreTrace, window_ms: int, minimum_count: int) -> tuple[
        np.ndarray, np.ndarray]:
    n_cls = trace.scores.shape[1]
    det = Detector(["_"] * n_cls, DetectionSettings(average_window_duration_ms=window_ms,
                                                    minimum_count=minimum_count))
    top = np.empty(len(trace.times_ms), np.int64)
    score = np.empty(len(trace.times_ms), np.int64)
    for i, (t, s) in enumerate(zip(trace.times_ms.tolist(), trace.scores)):
        r = det.process(t, s)
        top[i], score[i] = r.class_index, r.score
    return top, score


def single_class_detections(times_ms: np.ndarray, top: np.ndarray, score: np.ndarray, k: int,
                            threshold: int, suppression_ms: int) -> np.ndarray:
    """Times at which class k fires when it is the only class that can fire (others at 255):
    `score > threshold` while k is on top, then MLTK's suppression of repeats."""
    cand = times_ms[(top == k) & (score > threshold)]
    if len(cand) == 0:
        return cand
    if suppression_ms <= 0:
        return cand
    keep = []
    i, n = 0, len(cand)
    while i < n:  # greedy: next detection is the first candidate more than suppression_ms later
        keep.append(int(cand[i]))
        i = int(np.searchsorted(cand, cand[i] + suppression_ms, side="right"))
    return np.asarray(keep, dtype=np.int64)
