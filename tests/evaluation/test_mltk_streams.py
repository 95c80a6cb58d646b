"""Streaming evaluation of a real MLTK model on real Speech Commands clips (needs ../shared)."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.model import KeywordModel
from keywire.training import calibrate as cb
from keywire.training import stream_eval as se
from keywire.training import streams as st
from tests.fixtures.paths import shared_path


@pytest.fixture(scope="module")
def micro_speech_traces():
    model = KeywordModel.load(shared_path("mltk_models", "tflite_micro_speech.tflite"))
    sc = shared_path("speech_commands_v0.02_test_dev")
    clips = se.select_clips(st.keyword_clips(sc), model.classes, 20, seed=0)
    pool = st.BackgroundPool(st.audio_files([shared_path("background_noise"), sc / "_unknown_"]))
    plan = se.EvalPlan(snr_db=(20.0, 0.0), hours=0.03, spacing_check=(),
                       stream=st.StreamConfig(seed=2, stream_s=300.0))
    bg, pos, cpu, audio = se.score_stream_set(model, se.build_stream_set(clips, pool, plan))
    return model, plan, bg, pos


def test_mltk_micro_speech_on_streams(micro_speech_traces):
    model, plan, bg, pos = micro_speech_traces
    report = se.report_from_traces(model, bg, pos, model.detection, plan)
    for kw in ("yes", "no"):
        loud, quiet = report.conditions["snr20"][kw], report.conditions["snr0"][kw]
        assert loud.occurrences == quiet.occurrences == 20
        assert loud.recall >= 0.4, f"{kw}: {loud.hits}/20 at 20 dB"
        assert loud.recall >= quiet.recall
        # MLTK averages 1 s of scores: events follow the word's end by a few hundred ms
        assert 0 < loud.latency_ms["median"] < 1000


def test_calibration_on_real_clips_trades_misses_for_false_accepts(micro_speech_traces):
    model, plan, bg, pos = micro_speech_traces
    traces = list(bg) + list(pos["snr20"])
    grid = dict(windows_ms=(500,), minimum_counts=(1, 3))
    loose = cb.calibrate(traces, model.classes, model.detection, cb.CalibrationSpec(target_fa_per_hour=200.0, **grid))
    strict = cb.calibrate(traces, model.classes, model.detection, cb.CalibrationSpec(target_fa_per_hour=0.5, **grid))
    assert all(c.fa_per_hour <= 0.5 for c in strict.choices)
    assert all(c.fa_per_hour <= 200.0 for c in loose.choices)
    assert loose.mean_frr <= strict.mean_frr
    assert np.mean([c.threshold for c in loose.choices]) <= np.mean([c.threshold for c in strict.choices]) + 1e-9 \
        or loose.detection.average_window_duration_ms != strict.detection.average_window_duration_ms
