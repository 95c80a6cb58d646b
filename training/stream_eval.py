"""Streaming evaluation: recall, false accepts per hour, DET sweeps and detection latency.

Scores are recorded once per stream (`score_trace.collect_scores`) and every figure that
depends on detection settings is replayed from them: exact `Detector` replay at the chosen
settings, and a 256-threshold DET sweep per keyword from the vectorised averaging.

Counting rule: a detection of keyword k at time t is a hit when some not-yet-hit
occurrence of k has `start <= t <= end + tolerance`; every other detection is a false
accept for k (including detections of k while another keyword is spoken). FA/hour is
false accepts over all evaluated audio (keyword-free background and positive streams).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from keywire.protocol.errors import ConfigError
from keywire.agent.model import KeywordModel
from keywire.protocol.detection import DetectionSettings

from .score_trace import (ScoreTrace, averaged_top, collect_scores, detect_events, merge_traces,
                          single_class_detections)
from .streams import (BackgroundPool, KeywordClip, Occurrence, Stream, StreamConfig, build_background_streams,
                      build_positive_streams)

DEFAULT_TOLERANCE_S = 1.0
FA_TARGETS = (1.0, 0.1)  # FA/hour points reported on every DET curve


# ----------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class Match:
    """Outcome of matching one keyword's detections against ground truth."""

    hits: int
    false_accepts: int
    latencies_ms: tuple[float, ...] = ()


def match_keyword(det_times_ms: np.ndarray, occurrences: Sequence[Occurrence], keyword: str,
                  tolerance_s: float = DEFAULT_TOLERANCE_S) -> Match:
    """Hits (one per occurrence), false accepts and latencies (detection - end of keyword)."""
    occ = sorted((o for o in occurrences if o.keyword == keyword), key=lambda o: o.start_s)
    if not occ:
        return Match(0, int(len(det_times_ms)))
    starts = np.array([o.start_s * 1000.0 for o in occ])
    ends = np.array([o.end_s * 1000.0 for o in occ])
    t = np.asarray(det_times_ms, dtype=np.float64)
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = (idx >= 0) & (t <= ends[np.maximum(idx, 0)] + tolerance_s * 1000.0)
    # one hit per occurrence: the first detection in its window
    hit_idx, first = np.unique(idx[ok], return_index=True)
    hit_times = t[ok][first]
    lat = tuple(float(v) for v in hit_times - ends[hit_idx])
    return Match(hits=int(len(hit_idx)), false_accepts=int(len(t) - len(hit_idx)), latencies_ms=lat)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class DetPoint:
    threshold: int
    frr: float
    fa_per_hour: float


@dataclass(frozen=True)
class KeywordResult:
    """Streaming figures for one keyword under one condition (at the model's settings, plus
    the threshold sweep)."""

    keyword: str
    occurrences: int
    hits: int
    false_accepts: int
    false_accepts_background: int
    hours: float
    hours_background: float
    latency_ms: Mapping[str, float]
    det: tuple[DetPoint, ...]
    at_targets: Mapping[str, Mapping[str, float]]

    @property
    def recall(self) -> float:
        return self.hits / self.occurrences if self.occurrences else float("nan")

    @property
    def frr(self) -> float:
        return 1.0 - self.recall

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.hours if self.hours else float("nan")

    @property
    def fa_per_hour_background(self) -> float:
        return self.false_accepts_background / self.hours_background if self.hours_background else float("nan")

    def to_dict(self) -> dict:
        return {
            "keyword": self.keyword, "occurrences": self.occurrences, "hits": self.hits,
            "recall": _r(self.recall), "frr": _r(self.frr), "false_accepts": self.false_accepts,
            "fa_per_hour": _r(self.fa_per_hour), "false_accepts_background": self.false_accepts_background,
            "fa_per_hour_background": _r(self.fa_per_hour_background),
            "latency_ms": {k: _r(v, 1) for k, v in self.latency_ms.items()},
            "at_fa_per_hour": {k: {kk: _r(vv) for kk, vv in v.items()} for k, v in self.at_targets.items()},
            "det": [[p.threshold, _r(p.frr), _r(p.fa_per_hour)] for p in self.det],
        }


def _r(v: float, nd: int = 4) -> Optional[float]:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), nd)


def latency_summary(lat: Sequence[float]) -> dict[str, float]:
    if not lat:
        return {"n": 0, "median": float("nan"), "p90": float("nan"), "mean": float("nan")}
    a = np.asarray(lat, dtype=float)
    return {"n": float(len(a)), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean())}


def frr_at(det: Sequence[DetPoint], fa_per_hour: float) -> dict[str, float]:
    """Lowest false-reject rate among thresholds whose FA/hour is at most the target (the best
    a threshold choice achieves), with that threshold; FRR 1.0 when none qualifies."""
    ok = [p for p in det if p.fa_per_hour <= fa_per_hour + 1e-12]
    if not ok:
        return {"frr": 1.0, "threshold": 255.0, "fa_per_hour": 0.0}
    best = min(ok, key=lambda p: (p.frr, p.threshold))
    return {"frr": best.frr, "threshold": float(best.threshold), "fa_per_hour": best.fa_per_hour}


def _target_key(fa: float) -> str:
    return f"{fa:g}"


def sweep_keyword(merged: ScoreTrace, classes: Sequence[str], k: int, suppression_ms: int,
                  averaged: tuple[np.ndarray, np.ndarray], tolerance_s: float = DEFAULT_TOLERANCE_S,
                  thresholds: Iterable[int] = range(256)) -> tuple[DetPoint, ...]:
    """DET curve of class k on a merged trace (see `merge_traces`) whose `averaged_top` is
    `averaged`: for each threshold, FRR and FA/hour with only k able to fire (exactly what
    the Detector does with the other classes' thresholds at 255)."""
    kw = classes[k]
    hours = merged.duration_s / 3600.0
    n_occ = sum(1 for o in merged.occurrences if o.keyword == kw)
    top, score = averaged
    points = []
    for th in thresholds:
        times = single_class_detections(merged.times_ms, top, score, k, th, suppression_ms)
        m = match_keyword(times, merged.occurrences, kw, tolerance_s)
        frr = 1.0 - m.hits / n_occ if n_occ else float("nan")
        points.append(DetPoint(int(th), frr, m.false_accepts / hours if hours else float("nan")))
    return tuple(points)


def keyword_results(traces: Sequence[ScoreTrace], classes: Sequence[str], settings: DetectionSettings,
                    tolerance_s: float = DEFAULT_TOLERANCE_S, sweep: bool = True,
                    targets: Sequence[float] = FA_TARGETS) -> dict[str, KeywordResult]:
    """Figures per keyword at `settings` (exact Detector replay) plus each keyword's DET sweep."""
    hours = sum(tr.duration_s for tr in traces) / 3600.0
    hours_bg = sum(tr.duration_s for tr in traces if tr.kind == "background") / 3600.0
    events = {tr.stream: detect_events(tr, classes, settings) for tr in traces}
    merged = merge_traces(traces) if sweep else None
    averaged = (averaged_top(merged, settings.average_window_duration_ms, settings.minimum_count)
                if merged is not None else None)
    out: dict[str, KeywordResult] = {}
    for k, kw in enumerate(classes):
        if kw.startswith("_"):
            continue
        hits = fa = fa_bg = 0
        lat: list[float] = []
        n_occ = 0
        for tr in traces:
            times = np.array([e.time_ms for e in events[tr.stream] if e.class_index == k], dtype=np.int64)
            m = match_keyword(times, tr.occurrences, kw, tolerance_s)
            hits += m.hits
            fa += m.false_accepts
            if tr.kind == "background":
                fa_bg += m.false_accepts
            lat.extend(m.latencies_ms)
            n_occ += sum(1 for o in tr.occurrences if o.keyword == kw)
        det: tuple[DetPoint, ...] = ()
        at: dict[str, dict[str, float]] = {}
        if merged is not None and averaged is not None:
            det = sweep_keyword(merged, classes, k, settings.suppression_ms, averaged, tolerance_s)
            at = {_target_key(t): frr_at(det, t) for t in targets}
        out[kw] = KeywordResult(kw, n_occ, hits, fa, fa_bg, hours, hours_bg, latency_summary(lat), det, at)
    return out


def false_accept_sources(trace: ScoreTrace, stream: Stream, classes: Sequence[str],
                         settings: DetectionSettings) -> dict[str, dict[str, int]]:
    """keyword -> {background source: false accepts} on a background stream (which material
    makes a model fire: noise, `_unknown_` words, synthetic passages, ...)."""
    out: dict[str, dict[str, int]] = {}
    starts = np.array([seg[0] for seg in stream.segments])
    for e in detect_events(trace, classes, settings):
        t = e.time_ms / 1000.0
        i = int(np.searchsorted(starts, t, side="right")) - 1
        src = stream.segments[i][2] if i >= 0 else "unknown"
        kw = out.setdefault(classes[e.class_index], {})
        kw[src] = kw.get(src, 0) + 1
    return out


# ----------------------------------------------------------------------------- plots
def plot_det(results: Mapping[str, Mapping[str, KeywordResult]], path, title: str = "") -> None:
    """DET curves (FRR vs FA/hour, log x) per keyword; one panel per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(results)
    fig, axes = plt.subplots(1, len(conds), figsize=(5.0 * len(conds), 4.2), squeeze=False, sharey=True)
    for ax, cond in zip(axes[0], conds):
        for kw, r in results[cond].items():
            if not r.det:
                continue
            floor = 0.5 / r.hours if r.hours else 1e-3  # where 0 FA/hour is drawn
            # lower envelope: the best FRR reachable at or below each FA/hour
            pts = sorted(r.det, key=lambda p: (p.fa_per_hour, p.frr))
            x, y = [], []
            best = 101.0
            for p in pts:
                if p.frr * 100 < best:
                    best = p.frr * 100
                    x.append(max(p.fa_per_hour, floor))
                    y.append(best)
            ax.step(x, y, where="post", label=kw, linewidth=1.2)
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
        ax.axvline(0.1, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("false accepts per hour")
        ax.set_title(cond)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("false-reject rate (%)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


ProgressFn = Callable[[str], None]


# ----------------------------------------------------------------------------- whole evaluation
@dataclass(frozen=True)
class EvalPlan:
    """Which streams to build and how to score them (the `evaluate-stream` options)."""

    snr_db: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)
    hours: float = 1.0  # keyword-free background
    tolerance_s: float = DEFAULT_TOLERANCE_S
    stream: StreamConfig = StreamConfig()
    # extra gap ranges (seconds) for the spacing check, run at `spacing_snr_db`
    spacing_check: tuple[tuple[float, float], ...] = ((2.0, 3.0), (8.0, 16.0))
    spacing_snr_db: float = 10.0
    max_per_keyword: Optional[int] = None
    targets: tuple[float, ...] = FA_TARGETS

    def validate(self) -> None:
        self.stream.validate()
        if not self.snr_db:
            raise ConfigError("at least one --snr-db value is needed")
        if self.hours <= 0:
            raise ConfigError(f"--hours must be positive, got {self.hours}")
        if self.tolerance_s < 0:
            raise ConfigError("--tolerance-s must be >= 0")
        for lo, hi in ((self.stream.min_gap_s, self.stream.max_gap_s), *self.spacing_check):
            if lo < self.tolerance_s:
                raise ConfigError(f"keyword gaps ({lo:g}-{hi:g} s) must be at least the matching "
                                  f"tolerance ({self.tolerance_s:g} s)")


def select_clips(clips: Sequence[KeywordClip], classes: Sequence[str],
                 max_per_keyword: Optional[int], seed: int) -> list[KeywordClip]:
    """The clips of the model's keywords, at most `max_per_keyword` each (random, seeded)."""
    wanted = [c for c in classes if not c.startswith("_")]
    by_kw: dict[str, list[KeywordClip]] = {}
    for c in clips:
        if c.keyword in wanted:
            by_kw.setdefault(c.keyword, []).append(c)
    if not by_kw:
        raise ConfigError(f"no positive clips for the model's keywords {wanted}")
    out: list[KeywordClip] = []
    rng = np.random.default_rng(seed)
    for kw in wanted:
        cs = by_kw.get(kw, [])
        if max_per_keyword is not None and len(cs) > max_per_keyword:
            cs = [cs[i] for i in sorted(rng.choice(len(cs), max_per_keyword, replace=False))]
        out.extend(cs)
    return out


@dataclass(frozen=True)
class StreamSet:
    """All streams of one evaluation: background plus positives per condition name."""

    background: tuple[Stream, ...]
    positives: Mapping[str, tuple[Stream, ...]]  # "snr10" / "snr10_gap2-3" -> streams
    snr_of: Mapping[str, float]


def build_stream_set(clips: Sequence[KeywordClip], pool: BackgroundPool, plan: EvalPlan) -> StreamSet:
    """Background for `plan.hours` and positive streams for every SNR and spacing condition."""
    plan.validate()
    bg = tuple(build_background_streams(pool, plan.hours, plan.stream))
    pos: dict[str, tuple[Stream, ...]] = {}
    snr_of: dict[str, float] = {}
    for snr in plan.snr_db:
        name = f"snr{snr:g}"
        pos[name] = tuple(build_positive_streams(clips, pool, plan.stream.with_(snr_db=snr), name="pos"))
        snr_of[name] = snr
    if clips:
        for lo, hi in plan.spacing_check:
            name = f"snr{plan.spacing_snr_db:g}_gap{lo:g}-{hi:g}"
            cfg = plan.stream.with_(snr_db=plan.spacing_snr_db, min_gap_s=lo, max_gap_s=hi)
            pos[name] = tuple(build_positive_streams(clips, pool, cfg, name=f"pos_gap{lo:g}-{hi:g}"))
            snr_of[name] = plan.spacing_snr_db
    return StreamSet(bg, pos, snr_of)


def stream_set_from_saved(streams: Sequence[Stream]) -> StreamSet:
    """Saved streams (e.g. `--streams DIR`): background ones, positives grouped by SNR."""
    bg = tuple(s for s in streams if s.kind == "background")
    pos: dict[str, list[Stream]] = {}
    snr_of: dict[str, float] = {}
    for s in streams:
        if s.kind != "background":
            name = f"snr{s.snr_db:g}" if s.snr_db is not None else "saved"
            gap = re.search(r"_gap([0-9.]+-[0-9.]+)_", s.name)  # spacing-check streams keep their label
            if gap:
                name += f"_gap{gap.group(1)}"
            pos.setdefault(name, []).append(s)
            snr_of[name] = s.snr_db if s.snr_db is not None else float("nan")
    if not bg:
        raise ConfigError("the saved streams hold no keyword-free background stream")
    return StreamSet(bg, {k: tuple(v) for k, v in pos.items()}, snr_of)


@dataclass(frozen=True)
class StreamReport:
    """Results per condition (SNR or spacing variant) and keyword."""

    model: Mapping[str, object]
    conditions: Mapping[str, Mapping[str, KeywordResult]]
    hours_background: float
    plan: Mapping[str, object]
    cpu_s: float = 0.0
    audio_s: float = 0.0

    def to_dict(self) -> dict:
        return {"model": dict(self.model), "plan": dict(self.plan),
                "hours_background": round(self.hours_background, 4),
                "scoring": {"audio_s": round(self.audio_s, 1), "cpu_s": round(self.cpu_s, 2),
                            "cpu_s_per_audio_hour": round(self.cpu_s / self.audio_s * 3600, 2) if self.audio_s else None},
                "conditions": {c: {kw: r.to_dict() for kw, r in res.items()} for c, res in self.conditions.items()}}

    def to_text(self) -> str:
        head = (f"{'condition':<18}{'keyword':>10}{'n':>6}{'recall':>8}{'FA/h':>8}{'FA/h bg':>9}"
                + "".join(f"{'FRR@' + _target_key(t):>10}" for t in self.plan.get("targets", FA_TARGETS))
                + f"{'lat med':>9}{'lat p90':>9}")
        lines = [head]
        for cond, res in self.conditions.items():
            for kw, r in res.items():
                at = "".join(f"{_pct(r.at_targets[k]['frr']) if k in r.at_targets else 'n/a':>10}"
                             for k in (_target_key(t) for t in self.plan.get("targets", FA_TARGETS)))
                lines.append(f"{cond:<18}{kw:>10}{r.occurrences:>6}{_pct(r.recall):>8}{r.fa_per_hour:>8.2f}"
                             f"{r.fa_per_hour_background:>9.2f}{at}{_ms(r.latency_ms['median']):>9}"
                             f"{_ms(r.latency_ms['p90']):>9}")
        lines.extend(self.spacing_summary())
        hours = max((r.hours for res in self.conditions.values() for r in res.values()), default=0.0)
        lines.append(f"background {self.hours_background:.2f} h (one false accept = {1 / hours if hours else 0:.2f} "
                     f"FA/h; FA targets below that mean zero false accepts); scoring "
                     f"{self.audio_s / 3600:.2f} h of audio in {self.cpu_s:.1f} CPU-s")
        return "\n".join(lines)


    def spacing_summary(self) -> list[str]:
        """One line per keyword comparing recall and FRR@1 FA/h across gap ranges at one SNR
        (conditions named `snrX` and `snrX_gapA-B`): the results should not hinge on spacing."""
        gaps = self.plan.get("gap_s") or []
        out = []
        for cond in self.conditions:
            if "_gap" not in cond:
                continue
            base = cond.split("_gap")[0]
            if base not in self.conditions:
                continue
            label = f"{gaps[0]:g}-{gaps[1]:g}" if len(gaps) == 2 else "default"
            for kw, r in self.conditions[base].items():
                v = self.conditions[cond].get(kw)
                if v is None:
                    continue
                out.append(f"spacing check {base} {kw}: recall {_pct(r.recall)} (gaps {label} s) vs "
                           f"{_pct(v.recall)} (gaps {cond.split('_gap')[1]} s); FRR@1 FA/h "
                           f"{_pct(r.at_targets.get('1', {}).get('frr', float('nan')))} vs "
                           f"{_pct(v.at_targets.get('1', {}).get('frr', float('nan')))}")
        return out


def _pct(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v * 100:.1f}%"


def _ms(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.0f}"


def score_stream_set(model: KeywordModel, streams: StreamSet,
                     progress: Optional[ProgressFn] = None) -> tuple[tuple[ScoreTrace, ...],
                                                                     dict[str, tuple[ScoreTrace, ...]], float, float]:
    """Score every stream once: (background traces, positive traces per condition, CPU s, audio s)."""
    import time

    t0 = time.process_time()
    audio = 0.0

    def run(s: Stream) -> ScoreTrace:
        nonlocal audio
        if progress:
            progress(f"scoring {s.name} ({s.duration_s / 60:.1f} min)")
        audio += s.duration_s
        return collect_scores(model, s)

    bg = tuple(run(s) for s in streams.background)
    pos = {c: tuple(run(s) for s in ss) for c, ss in streams.positives.items()}
    return bg, pos, time.process_time() - t0, audio


def evaluate(model: KeywordModel, streams: StreamSet, plan: EvalPlan,
             detection: Optional[DetectionSettings] = None,
             progress: Optional[ProgressFn] = None) -> StreamReport:
    """Score the streams through the agent pipeline and report per condition and keyword."""
    settings = detection or model.detection
    bg, pos, cpu, audio = score_stream_set(model, streams, progress)
    return report_from_traces(model, bg, pos, settings, plan, cpu, audio)


def report_from_traces(model: KeywordModel, bg: Sequence[ScoreTrace], pos: Mapping[str, Sequence[ScoreTrace]],
                       settings: DetectionSettings, plan: EvalPlan, cpu_s: float = 0.0,
                       audio_s: float = 0.0) -> StreamReport:
    """Per-condition results from recorded traces (each condition = its positives + all background)."""
    conditions = {c: keyword_results(list(bg) + list(tr), model.classes, settings, plan.tolerance_s,
                                     targets=plan.targets)
                  for c, tr in pos.items()}
    if not conditions:
        conditions = {"background": keyword_results(list(bg), model.classes, settings, plan.tolerance_s,
                                                     targets=plan.targets)}
    info = {"name": model.name, "sha256": model.sha256, "classes": list(model.classes),
            "detection": settings.to_params()}
    plan_d = {"snr_db": list(plan.snr_db), "hours": plan.hours, "seed": plan.stream.seed,
              "tolerance_s": plan.tolerance_s, "gap_s": [plan.stream.min_gap_s, plan.stream.max_gap_s],
              "spacing_check": [list(g) for g in plan.spacing_check], "targets": list(plan.targets),
              "background_dbfs": plan.stream.background_dbfs}
    return StreamReport(info, conditions, sum(t.duration_s for t in bg) / 3600.0, plan_d, cpu_s, audio_s)
