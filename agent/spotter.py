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
                 device_id: str = "", on_scores: Optional[ScoresHook] = None,
                 native_frontend: Optional[bool] = None) -> None:
        """`native_frontend`: as `Frontend`'s `native` (None = the C frontend when built)."""
        self.device_id = device_id
        self._native_frontend = native_frontend
        self.on_scores = on_scores
        self.stats = SpotterStats()
        self._lock = threading.Lock()
        self._pending_model: Optional[tuple[KeywordModel, Optional[DetectionSettings]]] = None
        self._pending_detection: Optional[DetectionSettings] = None
        self._stream_samples = 0
        self._install(model, detection)

    # ---------------------------------------------------------------- setup
    def _install(self, model: KeywordModel, detection: Optional[DetectionSettings]) -> None:
        old_fe = getattr(self, "model", None) and self.model.frontend
        self.model = model
        self.detection = detection or model.detection
        fe = model.frontend
        self._rate = fe.sample_rate_hz
        self._period = max(1, fe.sample_rate_hz * self.detection.latency_ms // 1000)
        self._gain = self.detection.volume_gain
        self._step, self._win = fe.step_samples, fe.window_samples
        if old_fe != fe:
            self.frontend = Frontend(fe, native=self._native_frontend)
            self._window = np.zeros((fe.n_frames, fe.n_channels),
                                    dtype=np.float32 if fe.frontend_type == "mfcc" else np.uint16)
            self._restart_frontend_at(self._stream_samples)
        self._next_inference = self._stream_samples + self._period
        self.detector = Detector(model.classes, self.detection)

    def _restart_frontend_at(self, stream_sample: int) -> None:
        """The frontend's frame 0 starts at this stream position (after creation or reset)."""
        self._fe_origin = stream_sample
        self._fe_frames = 0

    def swap_model(self, model: KeywordModel, detection: Optional[DetectionSettings] = None) -> None:
        """Use `model` from the next inference step on (thread-safe)."""
        (detection or model.detection).validate(len(model.classes))  # refused now, not in the audio loop
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
        self._restart_frontend_at(self._stream_samples)
        self._next_inference = self._stream_samples + self._period

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
            self.stats.samples += len(x)
        return self._feed(x)

    def _feed(self, x: np.ndarray) -> list[Detection]:
        """The whole chunk goes through the frontend in one call (cheap per sample); frames are
        then released to the window by their end position, one inference boundary at a time."""
        start, end = self._stream_samples, self._stream_samples + len(x)
        frames = self.frontend.process(x)
        frame_ends = self._fe_origin + (self._fe_frames + np.arange(len(frames))) * self._step + self._win
        self._fe_frames += len(frames)
        detections: list[Detection] = []
        used = 0
        while self._next_inference <= end:
            boundary = self._next_inference
            upto = int(np.searchsorted(frame_ends, boundary, side="right"))
            self._push_features(frames[used:upto])
            used = upto
            self._stream_samples = boundary
            detection, restarted = self._infer()
            self._next_inference = boundary + self._period
            if detection is not None:
                detections.append(detection)
            if restarted:
                # Frames after the boundary came from the old frontend state: redo them.
                return detections + self._feed(x[boundary - start:])
        self._push_features(frames[used:])
        self._stream_samples = end
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

    def _infer(self) -> tuple[Optional[Detection], bool]:
        """One inference step at the current stream position; (detection, frontend restarted)."""
        frontend = self.frontend
        self._apply_pending()
        restarted = self.frontend is not frontend
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
            return None, restarted
        if result.reset_frontend:
            self.frontend.reset()
            self._restart_frontend_at(self._stream_samples)
            restarted = True
        self.stats.detections += 1
        m = self.model
        return Detection(keyword=m.classes[result.class_index], score=result.score, time_ms=now,
                         class_index=result.class_index, model_name=m.name, model_version=m.version,
                         model_sha256=m.sha256, device_id=self.device_id), restarted
