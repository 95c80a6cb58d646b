"""Calibration: detection settings that meet a false-accept target with the fewest misses.

MLTK and Edge Impulse leave `detection_threshold`, the averaging window and
`minimum_count` to hand-tuning. Here they are chosen from recorded score traces
(`score_trace.collect_scores`): for every candidate (window, minimum_count) the averaged
scores are computed once, each keyword's threshold is swept 0-255, and per keyword the
threshold with the lowest false-reject rate whose false accepts per hour stay within its
budget is taken (ties: the higher threshold, for margin). The (window, minimum_count) with
the lowest mean false-reject rate wins. The result is then checked by an exact replay
through the agent's `Detector` with all thresholds at once (classes interact through
suppression), raising a keyword's threshold while it still exceeds its budget.

Without positive streams the false-reject rate is unknown: the model's window and
minimum_count are kept and each threshold is the lowest that meets the budget, but not
below `floor_without_positives`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from keywire.protocol.errors import ConfigError
from keywire.agent.detector import MAX_RESULTS
from keywire.protocol.sl_params import merge_params
from keywire.protocol.detection import LIMITS, DetectionSettings

from .score_trace import ScoreTrace, averaged_top, merge_traces
from .stream_eval import DEFAULT_TOLERANCE_S, DetPoint, keyword_results, sweep_keyword


@dataclass(frozen=True)
class CalibrationSpec:
    """What to aim for and which settings to consider."""

    target_fa_per_hour: float = 0.5
    scope: str = "keyword"  # "keyword": each keyword within the target; "total": all keywords together
    windows_ms: tuple[int, ...] = (300, 500, 750, 1000, 1500)  # the model's own is always tried too
    minimum_counts: tuple[int, ...] = (1, 2, 3, 5)
    tolerance_s: float = DEFAULT_TOLERANCE_S
    max_fix_rounds: int = 40
    # Without positives nothing says how low a threshold may go; never below this (p = 0.5).
    floor_without_positives: int = 128

    def validate(self) -> None:
        if not self.target_fa_per_hour > 0:
            raise ConfigError(f"--target-fa-per-hour must be positive, got {self.target_fa_per_hour}")
        if self.scope not in ("keyword", "total"):
            raise ConfigError(f"--scope must be 'keyword' or 'total', got {self.scope!r}")
        if not self.windows_ms or not self.minimum_counts:
            raise ConfigError("calibration needs at least one window and one minimum count")
        for w in self.windows_ms:  # candidates obey the detection table like every other setting
            LIMITS["average_window_duration_ms"].check(w, where="calibration candidate ")
        for m in self.minimum_counts:
            LIMITS["minimum_count"].check(m, where="calibration candidate ")


@dataclass(frozen=True)
class KeywordChoice:
    keyword: str
    threshold: int
    frr: float  # nan without positives
    fa_per_hour: float


@dataclass(frozen=True)
class Calibration:
    """Chosen settings, per-keyword figures on the calibration streams, and the search table."""

    detection: DetectionSettings
    choices: tuple[KeywordChoice, ...]
    mean_frr: float
    budget_fa_per_hour: float
    hours: float
    searched: tuple[tuple[int, int, float], ...] = field(default=())  # (window, min_count, mean FRR)

    @property
    def allowed_false_accepts(self) -> int:
        """False accepts per keyword the budget allows over this background (0: see
        `allowed_false_accepts`)."""
        return allowed_false_accepts(self.budget_fa_per_hour, self.hours)

    @property
    def hours_allowing_one_false_accept(self) -> float:
        """The background over which the budget would allow one false accept (rounded up)."""
        return hours_allowing_one_false_accept(self.budget_fa_per_hour)

    def params(self) -> dict:
        """The parameter keys calibration sets (SL_PARAMSv1 names)."""
        d = self.detection
        return {"detection_threshold_list": list(d.detection_threshold_list or ()),
                "average_window_duration_ms": d.average_window_duration_ms,
                "minimum_count": d.minimum_count}

    def to_dict(self) -> dict:
        def r(v: float) -> Optional[float]:
            return None if isinstance(v, float) and math.isnan(v) else round(float(v), 4)

        return {"params": self.params(), "mean_frr": r(self.mean_frr),
                "budget_fa_per_hour_per_keyword": r(self.budget_fa_per_hour), "hours": r(self.hours),
                "keywords": {c.keyword: {"threshold": c.threshold, "frr": r(c.frr),
                                         "fa_per_hour": r(c.fa_per_hour)} for c in self.choices},
                "searched": [{"window_ms": w, "minimum_count": m, "mean_frr": r(f)} for w, m, f in self.searched]}


def allowed_false_accepts(budget_fa_per_hour: float, hours: float) -> int:
    """How many false accepts a per-keyword budget allows over `hours` of background. With none,
    each threshold sits just above the single highest score the keyword got there, so it rests
    on one moment of that background and moves with it."""
    return int(budget_fa_per_hour * hours + 1e-9)


def hours_allowing_one_false_accept(budget_fa_per_hour: float) -> float:
    """The background, in hours rounded up to 0.01, over which the budget allows one false accept."""
    return math.ceil(1 / budget_fa_per_hour * 100) / 100


def _pick(det: Sequence[DetPoint], budget: float, have_positives: bool, floor: int) -> DetPoint:
    ok = [p for p in det if p.fa_per_hour <= budget + 1e-12 and (have_positives or p.threshold >= floor)]
    if not ok:  # only reachable if even 255 fires, which the strict '>' rules out
        return DetPoint(255, 1.0, 0.0)
    if not have_positives:
        return min(ok, key=lambda p: p.threshold)
    return min(ok, key=lambda p: (p.frr, -p.threshold))


def calibrate(traces: Sequence[ScoreTrace], classes: Sequence[str], base: DetectionSettings,
              spec: CalibrationSpec = CalibrationSpec()) -> Calibration:
    """Choose thresholds (per class), window and minimum count for `spec`'s FA target."""
    spec.validate()
    keywords = [i for i, c in enumerate(classes) if not c.startswith("_")]
    if not keywords:
        raise ConfigError("the model has no keyword classes (all start with '_')")
    merged = merge_traces(traces)
    hours = merged.duration_s / 3600.0
    have_pos = any(o.keyword == classes[k] for o in merged.occurrences for k in keywords)
    budget = spec.target_fa_per_hour / (len(keywords) if spec.scope == "total" else 1)
    period = max(1, base.latency_ms)
    if have_pos:
        # windows that fit MLTK's 50-result ring at the model's inference period
        windows = sorted(set(spec.windows_ms) | {base.average_window_duration_ms})
        counts = sorted(set(spec.minimum_counts) | {base.minimum_count})
        grid = [(w, m) for w in windows for m in counts
                if w // period + 1 < MAX_RESULTS and m <= w // period + 1]
    else:
        grid = [(base.average_window_duration_ms, base.minimum_count)]
    if not grid:
        raise ConfigError("no (window, minimum count) candidate fits the model's latency_ms")

    best: Optional[tuple[float, int, int, dict[int, DetPoint]]] = None
    searched = []
    for w, m in grid:
        avg = averaged_top(merged, w, m)
        picks = {k: _pick(sweep_keyword(merged, classes, k, base.suppression_ms, avg, spec.tolerance_s),
                          budget, have_pos, spec.floor_without_positives) for k in keywords}
        mean_frr = float(np.mean([p.frr for p in picks.values()])) if have_pos else float("nan")
        searched.append((w, m, mean_frr))
        key = mean_frr if have_pos else 0.0
        if best is None or key < best[0] - 1e-12:
            best = (key, w, m, picks)
    assert best is not None
    _, w, m, picks = best
    thresholds = [base.threshold_for(i) for i in range(len(classes))]
    for k, p in picks.items():
        thresholds[k] = p.threshold
    detection = base.replace(average_window_duration_ms=w, minimum_count=m)
    detection = _with_thresholds(detection, thresholds, len(classes))

    # exact check with all classes live; raise thresholds of keywords still over budget
    for _ in range(spec.max_fix_rounds):
        res = keyword_results(traces, classes, detection, spec.tolerance_s, sweep=False)
        over = [k for k in keywords if res[classes[k]].fa_per_hour > budget + 1e-12]
        if not over:
            break
        for k in over:
            thresholds[k] = min(255, thresholds[k] + 1)
        detection = _with_thresholds(detection, thresholds, len(classes))
    res = keyword_results(traces, classes, detection, spec.tolerance_s, sweep=False)
    choices = tuple(KeywordChoice(classes[k], thresholds[k], res[classes[k]].frr if have_pos else float("nan"),
                                  res[classes[k]].fa_per_hour) for k in keywords)
    mean_frr = float(np.mean([c.frr for c in choices])) if have_pos else float("nan")
    return Calibration(detection, choices, mean_frr, budget, hours, tuple(searched))


def _with_thresholds(d: DetectionSettings, thresholds: Sequence[int], n_classes: int) -> DetectionSettings:
    s = d.replace(detection_threshold_list=tuple(int(t) for t in thresholds))
    s.validate(n_classes)
    return s


def apply_calibration(model: bytes, calibration: Calibration) -> bytes:
    """The model with the calibrated detection parameters written into its SL_PARAMSv1."""
    return merge_params(model, calibration.params())


def describe(calibration: Calibration) -> str:
    """Human-readable summary lines."""
    d = calibration.detection
    lines = [f"window {d.average_window_duration_ms} ms, minimum_count {d.minimum_count}, "
             f"budget {calibration.budget_fa_per_hour:g} FA/h per keyword over {calibration.hours:.2f} h"]
    for c in calibration.choices:
        frr = "n/a" if math.isnan(c.frr) else f"{c.frr * 100:.1f}%"
        lines.append(f"  {c.keyword:>10}: threshold {c.threshold:3d}  FRR {frr:>6}  FA/h {c.fa_per_hour:.2f}")
    return "\n".join(lines)
