"""Detection post-processing with exactly MLTK's RecognizeCommands semantics.

Scores arrive once per inference as uint8 per class. They are averaged over
`average_window_duration_ms` (at most 50 results kept; when full the new one is dropped),
need at least `minimum_count` results, pass only when `average > threshold` (strict), and
the same keyword is suppressed for `suppression_ms`. Labels starting with `_` never fire.
The firmware's C core implements the same rules; tests/board checks parity.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from keywire.protocol.detection import MAX_AVERAGED_RESULTS as MAX_RESULTS
from keywire.protocol.detection import DetectionSettings

__all__ = ["MAX_RESULTS", "Detector", "DetectorResult"]


@dataclass(frozen=True)
class DetectorResult:
    """Outcome of one `Detector.process` call."""

    class_index: int          # top class of the averaged scores (-1 when too few results)
    score: int                # its averaged score 0-255 (0 when too few results)
    detected: bool            # a new keyword detection
    reset_frontend: bool = False  # MLTK resets the frontend on detection when suppression_ms <= 1


class Detector:
    """Streaming recognizer state; `reset()` forgets history, `settings` can be swapped."""

    def __init__(self, classes: Sequence[str], settings: DetectionSettings) -> None:
        settings.validate(len(classes))
        self.classes = tuple(classes)
        self.settings = settings
        self._results: deque[tuple[int, np.ndarray]] = deque()
        self._total = np.zeros(len(self.classes), dtype=np.uint32)   # sum of the kept results
        self._last_class: Optional[int] = None
        self._last_time = 0

    def reset(self) -> None:
        self._results.clear()
        self._total[:] = 0
        self._last_class = None
        self._last_time = 0

    def set_settings(self, settings: DetectionSettings) -> None:
        """New thresholds/window/suppression take effect from the next result."""
        settings.validate(len(self.classes))
        self.settings = settings

    def process(self, now_ms: int, scores: np.ndarray) -> DetectorResult:
        s = self.settings
        scores = np.asarray(scores, dtype=np.uint8)
        if s.minimum_count == 0:
            averaged = scores.astype(np.uint32)
        else:
            results, total = self._results, self._total
            if len(results) < MAX_RESULTS:
                results.append((now_ms, scores))
                total += scores
            limit = now_ms - s.average_window_duration_ms
            while results and results[0][0] < limit:
                total -= results.popleft()[1]
            n = len(results)
            if n < s.minimum_count:
                return DetectorResult(-1, 0, False)
            averaged = total // np.uint32(n)   # the running sum: exact, like re-adding the kept results
        top = int(averaged.argmax())  # first maximum: ties go to the lower index
        score = int(averaged[top])
        detected = (
            score > s.threshold_for(top)
            and not self.classes[top].startswith("_")
            and (top != self._last_class or now_ms - self._last_time > s.suppression_ms)
        )
        if detected:
            self._last_class = top
            self._last_time = now_ms
        return DetectorResult(top, score, detected, reset_frontend=detected and s.suppression_ms <= 1)
