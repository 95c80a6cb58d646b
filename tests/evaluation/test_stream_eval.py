"""Streaming metrics: the counting rule, the vectorised sweep against the agent's Detector,
and a whole evaluation of the tiny model on small espeak-ng streams."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.training import score_trace as sct
from keywire.training import stream_eval as se
from keywire.training import streams as st
from keywire.training.streams import Occurrence


@pytest.fixture(scope="module")
def small_plan():
    cfg = st.StreamConfig(seed=11, stream_s=60.0, background_dbfs=-40.0)
    return se.EvalPlan(snr_db=(20.0, 0.0), hours=90 / 3600, stream=cfg, spacing_check=((2.0, 3.0),),
                       spacing_snr_db=20.0)


@pytest.fixture(scope="module")
def traces(tiny_model, sc_folder, background_folder, small_plan):
    model = KeywordModel.load(tiny_model)
    clips = se.select_clips(st.keyword_clips(sc_folder), model.classes, None, 0)
    sset = se.build_stream_set(clips, st.BackgroundPool(st.audio_files([background_folder])), small_plan)
    bg, pos, cpu, audio = se.score_stream_set(model, sset)
    return model, sset, bg, pos


def test_counting_rule():
    occ = [Occurrence("yes", 1.0, 1.5), Occurrence("no", 5.0, 5.4), Occurrence("yes", 10.0, 10.6)]
    # yes: hit at 1.7 (within end + 1 s), duplicate at 2.0 -> FA, 5.2 during "no" -> FA,
    # 9.9 before the start -> FA, 11.7 after end + tolerance -> FA
    m = se.match_keyword(np.array([1700, 2000, 5200, 9900, 11700]), occ, "yes", tolerance_s=1.0)
    assert (m.hits, m.false_accepts) == (1, 4)
    assert m.latencies_ms == pytest.approx((200.0,))
    m = se.match_keyword(np.array([1500, 10000, 11600]), occ, "yes", tolerance_s=1.0)
    assert (m.hits, m.false_accepts) == (2, 1)
    assert m.latencies_ms == pytest.approx((0.0, -600.0))
    assert se.match_keyword(np.array([3000]), occ, "on").false_accepts == 1


def test_frr_at_picks_the_best_threshold_within_the_fa_budget():
    det = (se.DetPoint(100, 0.05, 12.0), se.DetPoint(150, 0.10, 0.9), se.DetPoint(200, 0.30, 0.0),
           se.DetPoint(250, 0.90, 0.0))
    assert se.frr_at(det, 1.0) == {"frr": 0.10, "threshold": 150.0, "fa_per_hour": 0.9}
    assert se.frr_at(det, 0.1)["frr"] == 0.30
    assert se.frr_at(det[:1], 1.0)["frr"] == 1.0


def test_vectorised_averaging_equals_the_agent_detector(traces):
    _, _, bg, pos = traces
    for tr in [bg[0], pos["snr20"][0]]:
        assert len(tr.times_ms) > 100
        for window, count in [(1000, 3), (500, 1), (750, 2), (300, 0)]:
            a = sct.averaged_top(tr, window, count)
            b = sct._averaged_top_by_detector(tr, window, count)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_fast_events_equal_the_agent_detector_replay(traces):
    model, _, bg, pos = traces
    base = model.detection
    settings = [base, base.replace(detection_threshold_list=(120, 90, 200, 255), suppression_ms=300),
                base.replace(average_window_duration_ms=400, minimum_count=1, detection_threshold=100),
                base.replace(average_window_duration_ms=10, minimum_count=0, detection_threshold=60),
                base.replace(average_window_duration_ms=200, minimum_count=1, detection_threshold=20,
                             suppression_ms=100)]
    n_events = 0
    for tr in [bg[0], pos["snr20"][0], pos["snr0"][0]]:
        for s in settings:
            fast = sct.detect_events(tr, model.classes, s)
            assert fast == sct.replay(tr, model.classes, s)
            n_events += len(fast)
    assert n_events > 5  # the comparison covered real detections


def test_sweep_on_merged_traces_equals_detector_replay_per_stream(traces):
    model, _, bg, pos = traces
    all_traces = list(bg) + list(pos["snr20"]) + list(pos["snr0"])
    merged = sct.merge_traces(all_traces)
    base = model.detection
    avg = sct.averaged_top(merged, base.average_window_duration_ms, base.minimum_count)
    for k in (0, 1):
        det = se.sweep_keyword(merged, model.classes, k, base.suppression_ms, avg, thresholds=[0, 100, 160, 220])
        for p in det:
            only_k = base.replace(detection_threshold_list=tuple(p.threshold if i == k else 255
                                                                 for i in range(len(model.classes))))
            res = se.keyword_results(all_traces, model.classes, only_k, sweep=False)[model.classes[k]]
            assert p.frr == pytest.approx(res.frr)
            assert p.fa_per_hour == pytest.approx(res.fa_per_hour)
        frrs = [p.frr for p in det]
        assert frrs == sorted(frrs)  # a higher threshold never finds more


def _peaks(trace: sct.ScoreTrace, k: int, spans_ms: list) -> np.ndarray:
    """The highest score of class `k` within each (start, end) span of `trace`."""
    return np.array([trace.scores[(trace.times_ms >= a) & (trace.times_ms <= b), k].max(initial=0)
                     for a, b in spans_ms])


def _windows(trace: sct.ScoreTrace, ms: int) -> list:
    """Back-to-back (start, end) spans of `ms` covering the audio of `trace`."""
    return [(t, t + ms) for t in range(0, int(trace.duration_s * 1000) - ms, ms)]


def test_tiny_model_streaming_report(traces, small_plan):
    model, sset, bg, pos = traces
    # The tiny test model is trained in seconds on fixed-position clips; with MLTK's 1 s
    # averaging it rarely fires in a stream, so score it without averaging (the table's shortest
    # window holds one result): this test is about the report, not about the tiny model's accuracy.
    settings = model.detection.replace(average_window_duration_ms=10, minimum_count=0, detection_threshold=120)
    report = se.report_from_traces(model, bg, pos, settings, small_plan)
    assert set(report.conditions) == {"snr20", "snr0", "snr20_gap2-3"}
    clean = report.conditions["snr20"]
    for kw in ("yes", "no"):
        r = clean[kw]
        assert r.occurrences == 6
        assert r.hours == pytest.approx(report.hours_background + sum(t.duration_s for t in pos["snr20"]) / 3600)
        assert len(r.det) == 256 and r.det[-1].frr == 1.0 and r.det[-1].fa_per_hour == 0.0
        # Not monotone in general: with suppression, a lower threshold can fire early (a false
        # accept) and suppress the later hit, so only the bounds are fixed.
        assert all(0.0 <= p.frr <= 1.0 and p.fa_per_hour >= 0.0 for p in r.det)
        # the figures at the model's settings are one point of the sweep
        at = r.det[120]
        assert (at.frr, at.fa_per_hour) == (pytest.approx(r.frr), pytest.approx(r.fa_per_hour))
        if r.hits:  # detections come after the word starts, within the matching tolerance
            assert -1000 < r.latency_ms["median"] < 1000
    # The keyword scores respond where keywords were inserted: there they beat 90% of same-length
    # windows of keyword-free background (flat or missing scores, or a wrong time scale, fail).
    # Measured on ten tiny models: 9-12 of 12 occurrences pass, and 3-6 with the ground truth
    # shifted by 3-4 s (the shifted spans often land on the next keyword). The tiny model barely
    # tells yes from no in a stream, and whether it tops _unknown_ varies with the machine it was
    # trained on, so neither the class nor the sweep's recall is asserted; the stream truth is
    # checked against the audio in test_streams.py and MLTK's model on streams in test_mltk_streams.py.
    merged_pos = sct.merge_traces(pos["snr20"])
    above = 0
    for k, kw in enumerate(("yes", "no")):
        at_keyword = _peaks(merged_pos, k, [(o.start_s * 1000, o.end_s * 1000 + 1000)
                                            for o in merged_pos.occurrences if o.keyword == kw])
        # windows within each background stream (a merged trace's gaps hold no scores)
        elsewhere = np.concatenate([_peaks(tr, k, _windows(tr, 1500)) for tr in bg])
        above += int((at_keyword > np.percentile(elsewhere, 90)).sum())
    assert above >= 6, f"{above} of 12 keyword occurrences score above the background's 90th percentile"
    text = report.to_text()
    assert "snr20_gap2-3" in text and "FRR@1" in text
    d = report.to_dict()
    assert d["conditions"]["snr0"]["yes"]["occurrences"] == 6
    assert len(d["conditions"]["snr0"]["yes"]["det"]) == 256


def test_false_accepts_are_attributed_to_background_sources(traces, sc_folder, background_folder):
    model, _, _, _ = traces
    # "background" that holds the keyword itself among its material, so the model must fire
    # on it, and the attribution must name where each false accept came from
    files, spoken = st.audio_files([background_folder]), st.audio_files([sc_folder / "yes", sc_folder / "no"])
    pool = st.BackgroundPool(files + spoken, weights=[1.0] * len(files) + [3.0] * len(spoken))
    [stream] = st.build_background_streams(pool, 60 / 3600, st.StreamConfig(seed=5, stream_s=60.0,
                                                                            background_dbfs=-20.0))
    trace = sct.collect_scores(model, stream)
    loose = model.detection.replace(average_window_duration_ms=10, minimum_count=0, detection_threshold=0,
                                    suppression_ms=0)
    sources = se.false_accept_sources(trace, stream, model.classes, loose)
    events = sct.detect_events(trace, model.classes, loose)
    assert events, "the loose settings fire on spoken keywords"
    assert sum(n for kw in sources.values() for n in kw.values()) == len(events)
    known = {src for _, _, src in stream.segments}
    assert all(src in known for kw in sources.values() for src in kw)
    spoken_sources = {src for src in known if src.split("/")[0] in ("yes", "no") or src == "mixed"}
    from_spoken = sum(n for kw in sources.values() for src, n in kw.items() if src in spoken_sources)
    assert from_spoken > 0  # segments with spoken keywords are where keywords fire
