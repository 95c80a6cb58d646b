"""Calibration meets its false-accept target (checked by exact replay), writes its choice into
the model, and the `calibrate` / `evaluate-stream` commands work end to end."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keywire.protocol.errors import ConfigError
from keywire.agent.model import KeywordModel
from keywire.protocol.sl_params import read_params
from keywire.training import calibrate as cb
from keywire.training import stream_eval as se
from keywire.training import streams as st


def keywire(*args: str) -> subprocess.CompletedProcess:
    """The real `keywire` command line in its own process."""
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def cal_traces(tiny_model, sc_folder, background_folder):
    model = KeywordModel.load(tiny_model)
    plan = se.EvalPlan(snr_db=(20.0,), hours=120 / 3600, spacing_check=(),
                       stream=st.StreamConfig(seed=5, stream_s=60.0, background_dbfs=-40.0))
    clips = se.select_clips(st.keyword_clips(sc_folder), model.classes, None, 0)
    sset = se.build_stream_set(clips, st.BackgroundPool(st.audio_files([background_folder])), plan)
    bg, pos, _, _ = se.score_stream_set(model, sset)
    return model, list(bg), list(pos["snr20"])


def test_calibration_meets_the_target_with_the_lowest_miss_rate(cal_traces):
    model, bg, pos = cal_traces
    traces = bg + pos
    target = 30.0  # FA/hour; the streams are minutes long, so a coarse target is measurable
    spec = cb.CalibrationSpec(target_fa_per_hour=target, windows_ms=(10, 300, 1000), minimum_counts=(0, 1, 2))
    cal = cb.calibrate(traces, model.classes, model.detection, spec)
    d = cal.detection
    assert d.detection_threshold_list is not None and len(d.detection_threshold_list) == 4
    assert d.detection_threshold_list[2:] == (model.detection.threshold_for(2), model.detection.threshold_for(3))
    # exact replay with all classes live stays within budget
    res = se.keyword_results(traces, model.classes, d, sweep=False)
    for kw in ("yes", "no"):
        assert res[kw].fa_per_hour <= target
        assert {c.keyword: c.frr for c in cal.choices}[kw] == pytest.approx(res[kw].frr)
    # no searched (window, count) had a lower mean FRR than the chosen one
    chosen = [f for w, m, f in cal.searched if (w, m) == (d.average_window_duration_ms, d.minimum_count)]
    assert chosen and min(f for _, _, f in cal.searched) == pytest.approx(chosen[0])
    assert cal.mean_frr <= chosen[0] + 1e-9 or all(c.fa_per_hour <= target for c in cal.choices)
    # the model's own settings are no better at the same FA budget
    base = se.keyword_results(traces, model.classes, model.detection, sweep=False)
    if all(base[k].fa_per_hour <= target for k in ("yes", "no")):
        assert cal.mean_frr <= np.mean([base[k].frr for k in ("yes", "no")]) + 1e-9


def test_calibration_without_positives_only_bounds_false_accepts(cal_traces):
    model, bg, _ = cal_traces
    spec = cb.CalibrationSpec(target_fa_per_hour=0.5)
    cal = cb.calibrate(bg, model.classes, model.detection, spec)
    assert (cal.detection.average_window_duration_ms, cal.detection.minimum_count) == \
        (model.detection.average_window_duration_ms, model.detection.minimum_count)
    assert all(c.threshold >= spec.floor_without_positives and c.fa_per_hour <= 0.5 for c in cal.choices)
    assert all(np.isnan(c.frr) for c in cal.choices)
    with pytest.raises(ConfigError, match="positive"):
        cb.calibrate(bg, model.classes, model.detection, cb.CalibrationSpec(target_fa_per_hour=0))


def test_calibrate_command_writes_a_loadable_model(tmp_path, tiny_model, sc_folder, background_folder):
    out = tmp_path / "cal.tflite"
    r = keywire("calibrate", str(tiny_model), "--background", str(background_folder), "--positives",
                str(sc_folder), "--hours", "0.02", "--snr-db", "20", "--target-fa-per-hour", "100",
                "--out", str(out), "--report", str(tmp_path / "cal.json"), "-q")
    assert r.returncode == 0, r.stderr
    assert "allows none" not in r.stderr, r.stderr       # 100/h over minutes allows some false accepts
    params = read_params(out.read_bytes())
    report = json.loads((tmp_path / "cal.json").read_text())
    assert params["detection_threshold_list"] == report["params"]["detection_threshold_list"]
    assert params["minimum_count"] == report["params"]["minimum_count"]
    assert params["classes"] == ["yes", "no", "_unknown_", "_silence_"]  # everything else kept
    m = KeywordModel.load(out)
    assert m.detection.detection_threshold_list == tuple(report["params"]["detection_threshold_list"])
    assert "threshold" in r.stdout and "FRR: share of keywords missed" in " ".join(r.stdout.split())
    # a strict target: a warning exactly when some keyword's false-reject rate is above --max-frr
    r = keywire("calibrate", str(tiny_model), "--background", str(background_folder), "--positives",
                str(sc_folder), "--hours", "0.02", "--snr-db", "20", "--target-fa-per-hour", "0.01",
                "--out", str(tmp_path / "strict.tflite"), "--max-frr", "0.05", "--json", "-q")
    assert r.returncode == 0, r.stderr
    strict = json.loads(r.stdout)
    missed = [k for k, v in strict["keywords"].items() if v["frr"] is not None and v["frr"] > 0.05]
    assert ("warning: the calibrated model misses" in r.stderr) == bool(missed), (r.stderr, strict)
    # 0.01/h over minutes allows no false accept: the threshold rests on one moment, and it says so
    said = " ".join(r.stderr.split())
    assert f"{strict['hours']:.2f} h of background at 0.01 false accepts/hour per keyword allows none" in said, said
    assert "calibrate on 100 h or more" in said, said
    assert (tmp_path / "strict.tflite").exists()


def test_evaluate_stream_command_saves_and_rescores_the_same_streams(tmp_path, tiny_model, sc_folder,
                                                                     background_folder):
    args = ["evaluate-stream", str(tiny_model), "--hours", "0.01", "--snr-db", "20", "--spacing-check", "2-3",
            "-q"]
    r = keywire(*args, "--positives", str(sc_folder), "--background", str(background_folder),
                "--save-streams", str(tmp_path / "streams"), "--report", str(tmp_path / "a.json"),
                "--plots", str(tmp_path / "plots"))
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "recall" in text and "FRR@1" in text and "FA/h bg: per hour of keyword-free background" in text
    assert "XNNPACK" not in r.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    assert set(a["conditions"]) == {"snr20", "snr10_gap2-3"}
    assert (tmp_path / "plots" / "det_tiny.png").stat().st_size > 5000
    assert (tmp_path / "streams" / "streams.json").exists()
    r = keywire(*args, "--streams", str(tmp_path / "streams"), "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    # saved streams re-score to the same figures, spacing variants included
    for kw in ("yes", "no"):
        assert b["conditions"]["snr20"][kw]["det"] == a["conditions"]["snr20"][kw]["det"]
        assert b["conditions"]["snr10_gap2-3"][kw]["det"] == a["conditions"]["snr10_gap2-3"][kw]["det"]


def test_bad_options_give_one_line_and_an_exit_code(tmp_path, tiny_model, sc_folder, background_folder):
    def fails(code: int, needle: str, *args: str) -> None:
        r = keywire(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code, r.stderr
        assert len(lines) == 1 and needle in lines[0], r.stderr

    fails(2, "--background", "evaluate-stream", str(tiny_model), "--positives", str(sc_folder))
    flat = tmp_path / "flat"
    flat.mkdir()
    fails(2, "expected Speech Commands layout", "evaluate-stream", str(tiny_model), "--positives", str(flat),
          "--background", str(background_folder))
    fails(2, "--snr-db", "evaluate-stream", str(tiny_model), "--positives", str(sc_folder), "--background",
          str(background_folder), "--snr-db", "ten")
    fails(3, "not found", "evaluate-stream", str(tmp_path / "missing.tflite"), "--positives", str(sc_folder),
          "--background", str(background_folder))
    fails(2, "does not exist", "calibrate", str(tiny_model), "--background", str(tmp_path / "nope"), "--output",
          str(tmp_path / "x.tflite"))
