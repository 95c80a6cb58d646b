"""MLTK RecognizeCommands semantics, checked on hand-made score sequences."""
from __future__ import annotations

import numpy as np

from keywire.agent.detector import MAX_RESULTS, Detector
from keywire.protocol.detection import DetectionSettings

CLASSES = ("on", "off", "_unknown_")


def run(det: Detector, seq):
    return [det.process(t, np.array(s, dtype=np.uint8)) for t, s in seq]


def test_minimum_count_and_integer_average():
    d = Detector(CLASSES, DetectionSettings(average_window_duration_ms=1000, detection_threshold=100,
                                            minimum_count=3, suppression_ms=500))
    r = run(d, [(0, [200, 0, 0]), (100, [201, 0, 0]), (200, [201, 0, 0])])
    assert [x.detected for x in r] == [False, False, True]
    assert r[0].score == 0 and r[0].class_index == -1
    assert r[2].score == (200 + 201 + 201) // 3


def test_strict_threshold_and_underscore_labels():
    d = Detector(CLASSES, DetectionSettings(detection_threshold=200, minimum_count=0))
    assert not d.process(0, np.array([200, 0, 0], np.uint8)).detected  # needs > threshold
    assert d.process(10, np.array([201, 0, 0], np.uint8)).detected
    assert not d.process(5000, np.array([0, 0, 255], np.uint8)).detected  # _unknown_ never fires


def test_255_never_fires_with_threshold_255():
    d = Detector(CLASSES, DetectionSettings(detection_threshold_list=(255, 255, 255), minimum_count=0))
    assert not d.process(0, np.array([255, 0, 0], np.uint8)).detected


def test_suppression_blocks_only_same_keyword():
    d = Detector(CLASSES, DetectionSettings(detection_threshold=100, minimum_count=0, suppression_ms=1000))
    on, off = np.array([250, 0, 0], np.uint8), np.array([0, 250, 0], np.uint8)
    assert d.process(0, on).detected
    assert not d.process(500, on).detected
    assert d.process(600, off).detected          # a different keyword is not suppressed
    assert d.process(700, on).detected           # 'on' differs from the last detected ('off')
    assert not d.process(1700, on).detected      # exactly suppression_ms later: still blocked
    assert d.process(1701, on).detected


def test_window_drops_old_results_and_ties_go_low():
    d = Detector(CLASSES, DetectionSettings(average_window_duration_ms=300, detection_threshold=100,
                                            minimum_count=2))
    run(d, [(0, [250, 0, 0]), (100, [250, 0, 0])])
    r = d.process(450, np.array([120, 120, 0], np.uint8))
    assert r.score == 0  # only one result within 300 ms -> below minimum_count
    r = d.process(500, np.array([120, 120, 0], np.uint8))
    assert r.class_index == 0 and r.score == 120  # tie between on/off goes to the lower index


def test_ring_is_bounded_and_new_result_dropped_when_full():
    d = Detector(CLASSES, DetectionSettings(average_window_duration_ms=60000, detection_threshold=254,
                                            minimum_count=1))
    for t in range(MAX_RESULTS):
        d.process(t, np.array([0, 10, 0], np.uint8))
    r = d.process(MAX_RESULTS, np.array([255, 0, 0], np.uint8))  # dropped: ring is full
    assert r.class_index == 1 and r.score == 10


def test_reset_on_detection_when_suppression_le_1():
    d = Detector(CLASSES, DetectionSettings(detection_threshold=100, minimum_count=0, suppression_ms=1))
    assert d.process(0, np.array([250, 0, 0], np.uint8)).reset_frontend
