"""Parity: the firmware's C post-processing and the agent's Python detector make identical
decisions on the shared vectors (firmware/tests/detect_vectors.txt) and on fresh random runs."""
from __future__ import annotations

import numpy as np
import pytest

from keywire.agent.board.ccore import CDetector
from keywire.agent.detector import Detector
from keywire.protocol.detection import DetectionSettings
from tests.fixtures.paths import REPO

VECTORS = REPO / "firmware" / "tests" / "detect_vectors.txt"


def load_vectors() -> list[tuple[list[str], DetectionSettings, list[tuple[int, list[int], tuple[int, int, bool]]]]]:
    cases = []
    for line in VECTORS.read_text().splitlines():
        f = line.split()
        if f and f[0] == "case":
            n, window, suppression, min_count, threshold = map(int, f[1:6])
            labels = [("_c%d" if flag == "1" else "c%d") % i for i, flag in enumerate(f[6].split(","))]
            tl = None if f[7] == "-" else tuple(int(v) for v in f[7].split(","))
            s = DetectionSettings(average_window_duration_ms=window, detection_threshold=threshold,
                                  detection_threshold_list=tl, suppression_ms=suppression, minimum_count=min_count)
            assert len(labels) == n
            cases.append((labels, s, []))
        elif f and f[0] == "s":
            scores = [int(v) for v in f[2].split(",")]
            cases[-1][2].append((int(f[1]), scores, (int(f[3]), int(f[4]), f[5] == "1")))
    return cases


def test_vectors_cover_the_semantics():
    cases = load_vectors()
    assert len(cases) == 6 and sum(len(c[2]) for c in cases) == 2400
    detections = [sum(exp[2] for _, _, exp in steps) for _, _, steps in cases]
    assert all(d > 0 for i, d in enumerate(detections) if i != 4)
    assert detections[4] == 0  # threshold 255: an average of 255 never passes (strict >)


@pytest.mark.parametrize("index", range(6))
def test_python_detector_and_c_core_match_the_shared_vectors(index):
    labels, settings, steps = load_vectors()[index]
    py, c = Detector(labels, settings), CDetector(labels, settings)
    for now, scores, expected in steps:
        r = py.process(now, np.array(scores, np.uint8))
        assert (r.class_index, r.score, r.detected) == expected, f"Python at {now} ms"
        assert c.process(now, scores) == expected, f"C at {now} ms"


def test_random_runs_agree():
    rng = np.random.default_rng(7)
    for trial in range(30):
        n = int(rng.integers(2, 6))
        labels = [f"_k{i}" if rng.random() < 0.3 else f"k{i}" for i in range(n)]
        tl = tuple(int(v) for v in rng.integers(100, 256, n)) if trial % 3 == 0 else None
        s = DetectionSettings(average_window_duration_ms=int(rng.integers(0, 1500)),
                              detection_threshold=int(rng.integers(100, 256)), detection_threshold_list=tl,
                              suppression_ms=int(rng.integers(0, 2000)), minimum_count=int(rng.integers(0, 8)))
        py, c = Detector(labels, s), CDetector(labels, s)
        t = 0
        for _ in range(300):
            t += int(rng.integers(1, 150))
            scores = rng.integers(0, 256, n).astype(np.uint8)
            if rng.random() < 0.3:
                scores[int(rng.integers(0, n))] = 250
            r = py.process(t, scores)
            assert c.process(t, scores.tolist()) == (r.class_index, r.score, r.detected)
