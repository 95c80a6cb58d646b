"""The streaming keyword spotter: frontend -> feature window -> model -> detector.

`KeywordSpotter.feed()` takes int16 audio of any chunk size. Inference runs every
`latency_ms` of *audio* (counted in samples, not wall time), so results depend only on
the samples, never on how they were chunked. `swap_model()` and `set_detection()` take
effect between two inference steps while audio keeps flowing.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .detector import Detector
from .events import Detection
from .frontend import Frontend
from .model import KeywordModel
from .settings import DetectionSettings

log = logging.getLogger("keywire.spotter")

ScoresHook = Callable[[int, np.ndarray], None]


@dataclass
class SpotterStats:
    """Counters for telemetry and the service watchdog."""

    samples: int = 0
    inferences: int = 0
    detections: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    audio_rms_dbfs: float = -120.0
    last_scores: Optional[np.ndarray] = None
    last_top: int = -1
    last_score: int = 0


class KeywordSpotter:
    """Streaming engine; not thread-safe except for `swap_model`/`set_detection`."""

    def __init__(self, model: KeywordModel, detection: Optional[DetectionSettings] = None,
                 device_id: str = "", on_scores: Optional[ScoresHook] = None) -> None:
        self.device_id = device_id
        self.on_scores = on_scores
        self.stats = SpotterStats()
        self._lock = threading.Lock()
        self._pending_model: Optional[tuple[KeywordModel, Optional[DetectionSettings]]] = None
        self._pending_detection: Optional[DetectionSettings] = None
        self._install(model, detection)
        self._stream_samples = 0

    # ---------------------------------------------------------------- setup
    def _install(self, model: KeywordModel, detection: Optional[DetectionSettings]) -> None:
        old_fe = getattr(self, "model", None) and self.model.frontend
        self.model = model
        self.detection = detection or model.detection
        fe = model.frontend
        self._rate = fe.sample_rate_hz
        self._period = max(1, fe.sample_rate_hz * self.detection.latency_ms // 1000)
        self._gain = self.detection.volume_gain
        if old_fe != fe:
            self.frontend = Frontend(fe)
            self._window = np.zeros((fe.n_frames, fe.n_channels),
                                    dtype=np.float32 if fe.frontend_type == "mfcc" else np.uint16)
            self._until_inference = self._period
        else:
            self._until_inference = min(getattr(self, "_until_inference", self._period), self._period)
        self.detector = Detector(model.classes, self.detection)

    def swap_model(self, model: KeywordModel, detection: Optional[DetectionSettings] = None) -> None:
        """Use `model` from the next inference step on (thread-safe)."""
        with self._lock:
            self._pending_model = (model, detection)

    def set_detection(self, detection: DetectionSettings) -> None:
        """New thresholds/window/suppression/latency from the next inference step (thread-safe)."""
        detection.validate(len(self.model.classes))
        with self._lock:
            self._pending_detection = detection

    def reset(self) -> None:
        """Forget all streaming state (frontend, feature window, detector history)."""
        self.frontend.reset()
        self._window[:] = 0
        self.detector.reset()
        self._until_inference = self._period

    def close(self) -> None:
        self.reset()

    @property
    def time_ms(self) -> int:
        return self._stream_samples * 1000 // self._rate

    # ---------------------------------------------------------------- streaming
    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Consume audio; returns the detections raised by it (in order)."""
        x = np.asarray(samples, dtype=np.int16)
        if self._gain and self._gain != 1.0:
            x = np.clip(x.astype(np.float32) * self._gain, -32768, 32767).astype(np.int16)
        if len(x):
            rms = float(np.sqrt(np.mean(x.astype(np.float32) ** 2)))
            self.stats.audio_rms_dbfs = 20 * np.log10(max(rms, 1e-3) / 32768.0)
        detections: list[Detection] = []
        pos = 0
        while pos < len(x):
            take = min(len(x) - pos, self._until_inference)
            self._push_features(self.frontend.process(x[pos:pos + take]))
            pos += take
            self._stream_samples += take
            self.stats.samples += take
            self._until_inference -= take
            if self._until_inference == 0:
                self._until_inference = self._period
                d = self._infer()
                if d is not None:
                    detections.append(d)
        return detections

    def _push_features(self, frames: np.ndarray) -> None:
        n = len(frames)
        if n == 0:
            return
        w = self._window
        if n >= len(w):
            w[:] = frames[-len(w):]
        else:
            w[:-n] = w[n:]
            w[-n:] = frames

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending_model = self._pending_model, None
            detection, self._pending_detection = self._pending_detection, None
        if pending is not None:
            model, det = pending
            log.info("switching model %s -> %s", self.model.name, model.name)
            self._install(model, det)
        if detection is not None:
            self.detection = detection
            self.detector.set_settings(detection)
            self._period = max(1, self._rate * detection.latency_ms // 1000)
            self._gain = detection.volume_gain

    def _infer(self) -> Optional[Detection]:
        self._apply_pending()
        t0 = time.perf_counter()
        scores = self.model.infer(self._window)
        self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        self.stats.inferences += 1
        self.stats.last_scores = scores
        now = self.time_ms
        if self.on_scores is not None:
            self.on_scores(now, scores)
        result = self.detector.process(now, scores)
        self.stats.last_top, self.stats.last_score = result.class_index, result.score
        if not result.detected:
            return None
        if result.reset_frontend:
            self.frontend.reset()
        self.stats.detections += 1
        m = self.model
        return Detection(keyword=m.classes[result.class_index], score=result.score, time_ms=now,
                         class_index=result.class_index, model_name=m.name, model_version=m.version,
                         model_sha256=m.sha256, device_id=self.device_id)
