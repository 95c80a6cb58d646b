"""The streaming keyword spotter: frontend -> feature window -> model -> detector.

`KeywordSpotter.feed()` takes int16 audio of any chunk size. Each model ("head") infers
every `latency_ms` of *audio* (counted in samples, not wall time), so results depend only
on the samples, never on how they were chunked. Several heads can run at once
(`add_model`): heads whose frontend settings are equal share one feature stream (one
microfrontend per distinct `fe.*`, one speech-embedding stream for every embedding head),
each with its own detector and thresholds, each detection tagged with its model. The first
model is the primary one: `swap_model()`, `set_detection()`, `on_scores` and the
telemetry's last scores concern it; `swap_model()` and `set_detection()` take effect between
two of its inference steps while audio keeps flowing.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from keywire.protocol.detection import DetectionSettings
from keywire.protocol.frontend_settings import FrontendSettings

from .detector import Detector
from .events import Detection
from .frontend import Frontend, WindowQuantizer
from .frontend.embedding import (EMBEDDING_FRONTEND, EMBEDDING_STEP_SAMPLES, FIRST_EMBEDDING_SAMPLES,
                                 EmbeddingFrontend)
from .model import KeywordModel
from .streaming_head import HeadStepper

log = logging.getLogger("keywire.spotter")

ScoresHook = Callable[[int, np.ndarray], None]
_NO_SAMPLES = np.zeros(0, dtype=np.int16)
_NO_SAMPLES.flags.writeable = False


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


class _Stream:
    """One feature stream and the recent frames its heads read. Frame k ends at stream
    sample origin + k * step + span (span: samples from a (re)start to the first frame)."""

    def __init__(self, settings: FrontendSettings, native: Optional[bool], origin: int,
                 embeddings_per_call: int = 1) -> None:
        self.settings = settings
        if settings.frontend_type == EMBEDDING_FRONTEND:
            self.frontend = EmbeddingFrontend(embeddings_per_call)
            self.step, self.span, self.warm_up = EMBEDDING_STEP_SAMPLES, FIRST_EMBEDDING_SAMPLES, True
        else:
            self.frontend = Frontend(settings, native=native)
            self.step, self.span, self.warm_up = settings.step_samples, settings.window_samples, False
        self.history = np.zeros((0, settings.n_channels), dtype=self.frontend.dtype)
        self.moved = 0      # frames the history has moved by (a head's window: which are new)
        self.restart(origin)

    def restart(self, origin: int, forget: bool = True) -> None:
        """Frame 0 of a fresh frontend starts at `origin`; `forget` clears the recent frames
        (MLTK's reset on detection keeps them: only the frontend starts over)."""
        self.origin, self.frames_out, self.fed = origin, 0, origin
        if forget:
            self.history[:] = 0
            self.filled = 0
            self.moved += len(self.history)     # every frame of the history changed
        self.pending = self.history[:0]
        self.pending_ends = np.zeros(0, dtype=np.int64)

    def reserve(self, n: int) -> None:
        """Keep at least the last `n` frames."""
        if n > len(self.history):
            grown = np.zeros((n, self.history.shape[1]), dtype=self.history.dtype)
            grown[n - len(self.history):] = self.history
            self.history = grown

    def run(self, x: np.ndarray) -> None:
        """Features of `x` (the samples after everything run so far), held until released."""
        self.fed += len(x)
        self._add(self.frontend.process(x))

    def flush(self) -> None:
        """Frames the frontend holds back, computed now (the horizon reaches what was fed)."""
        self._add(self.frontend.flush())

    def _add(self, frames: np.ndarray) -> None:
        if not len(frames):
            return
        ends = self.origin + (self.frames_out + np.arange(len(frames))) * self.step + self.span
        self.frames_out += len(frames)
        self.pending = np.concatenate([self.pending, frames]) if len(self.pending) else frames
        self.pending_ends = np.concatenate([self.pending_ends, ends])

    @property
    def horizon(self) -> int:
        """The stream sample up to which every frame ending there has been computed: what it
        was fed, less what a frontend holds back (an embedding stream computing several
        embeddings per call)."""
        return min(self.fed, self.origin + self.frames_out * self.step + self.span - 1)

    def release(self, upto: int) -> None:
        """Frames that end at or before stream sample `upto` enter the history."""
        if not len(self.pending_ends):
            return
        n = int(np.searchsorted(self.pending_ends, upto, side="right"))
        frames, self.pending, self.pending_ends = self.pending[:n], self.pending[n:], self.pending_ends[n:]
        if n == 0:
            return
        h = self.history
        if n >= len(h):
            h[:] = frames[len(frames) - len(h):]
        else:
            h[:-n] = h[n:]
            h[-n:] = frames
        self.filled += n
        self.moved += n

    def window(self, n: int) -> Optional[np.ndarray]:
        """The last `n` frames, or None while a warm-up stream has not produced `n` yet."""
        if self.warm_up and self.filled < n:
            return None
        return self.history[len(self.history) - n:]


@dataclass
class _Head:
    """One model on a stream, with its own detector and inference clock."""

    model: KeywordModel
    detection: DetectionSettings
    detector: Detector
    stream: _Stream
    period: int
    next_inference: int
    frames: int             # feature frames one inference reads (the model's window)
    quantizer: Optional[WindowQuantizer] = None   # its input, quantised frame by frame
    stepper: Optional[HeadStepper] = None         # its step model: one step per new embedding
    seen: int = 0           # the stream's `moved` at its last inference


class KeywordSpotter:
    """Streaming engine; not thread-safe except for `swap_model`/`set_detection`."""

    def __init__(self, model: KeywordModel, detection: Optional[DetectionSettings] = None,
                 device_id: str = "", on_scores: Optional[ScoresHook] = None,
                 native_frontend: Optional[bool] = None, embeddings_per_call: int = 1,
                 step_heads: bool = True) -> None:
        """`native_frontend`: as `Frontend`'s `native` (None = the C frontend when built).
        `embeddings_per_call`: as `EmbeddingFrontend`'s; the heads of an embedding stream then
        run on the same windows as with 1, up to (k-1) x 80 ms later. `step_heads`: run a
        head that carries a step model one new embedding at a time (False: the whole window
        every inference, as a head without one runs)."""
        self.device_id = device_id
        self._step_heads = step_heads
        self._native_frontend = native_frontend
        self._embeddings_per_call = embeddings_per_call
        self.on_scores = on_scores
        self.stats = SpotterStats()
        self._lock = threading.Lock()
        self._pending_model: Optional[tuple[KeywordModel, Optional[DetectionSettings],
                                            Optional[HeadStepper]]] = None
        self._pending_detection: Optional[DetectionSettings] = None
        self._stream_samples = 0                        # every head has run up to here
        self._tail = _NO_SAMPLES                        # samples fed after that (held back)
        self._streams: list[_Stream] = []
        self._heads: list[_Head] = []
        self._new_streams: list[_Stream] = []
        self._heads.append(self._make_head(model, detection))
        self._new_streams.clear()   # runs from the first chunk on

    # ---------------------------------------------------------------- setup
    def _stream_for(self, fe: FrontendSettings) -> _Stream:
        for s in self._streams:
            if s.settings == fe:
                return s
        s = _Stream(fe, self._native_frontend, self._stream_samples, self._embeddings_per_call)
        self._streams.append(s)
        self._new_streams.append(s)
        return s

    def _make_head(self, model: KeywordModel, detection: Optional[DetectionSettings],
                   stepper: Optional[HeadStepper] = None) -> _Head:
        """`stepper`: the model's, made beforehand (a swap makes it outside the audio loop)."""
        det = detection or model.detection
        stream = self._stream_for(model.frontend)
        if stepper is None and self._step_heads:
            stepper = model.stepper()
        head = _Head(model=model, detection=det, detector=Detector(model.classes, det), stream=stream,
                     period=self._period_of(det, model), next_inference=0, frames=model.window_shape[0],
                     quantizer=None if stepper else model.window_quantizer(), stepper=stepper)
        head.next_inference = self._stream_samples + head.period
        stream.reserve(head.frames)
        return head

    def _period_of(self, det: DetectionSettings, model: KeywordModel) -> int:
        return max(1, model.frontend.sample_rate_hz * det.latency_ms // 1000)

    def _drop_unused_streams(self) -> None:
        used = {id(h.stream) for h in self._heads}
        for s in [s for s in self._streams if id(s) not in used]:
            s.frontend.close()
            self._streams.remove(s)

    def add_model(self, model: KeywordModel, detection: Optional[DetectionSettings] = None) -> None:
        """Run `model` too, on the shared stream of its feature family (before feeding audio,
        or between `feed` calls). Its detections carry its own name."""
        if model.frontend.sample_rate_hz != self.model.frontend.sample_rate_hz:
            from keywire.protocol.errors import ModelError
            raise ModelError(f"{model.source} runs at {model.frontend.sample_rate_hz} Hz, "
                             f"{self.model.source} at {self.model.frontend.sample_rate_hz} Hz")
        (detection or model.detection).validate(len(model.classes))
        self._heads.append(self._make_head(model, detection))
        for s in self._new_streams:     # created between chunks: it catches up on held-back samples
            s.run(self._tail)
        self._new_streams.clear()

    @property
    def model(self) -> KeywordModel:
        """The primary model."""
        return self._heads[0].model

    @property
    def models(self) -> tuple[KeywordModel, ...]:
        """Every model, the primary first."""
        return tuple(h.model for h in self._heads)

    @property
    def detection(self) -> DetectionSettings:
        return self._heads[0].detection

    @property
    def detector(self) -> Detector:
        return self._heads[0].detector

    @property
    def frontend(self):
        """The primary model's frontend."""
        return self._heads[0].stream.frontend

    def swap_model(self, model: KeywordModel, detection: Optional[DetectionSettings] = None) -> None:
        """Use `model` as the primary from its next inference step on (thread-safe)."""
        (detection or model.detection).validate(len(model.classes))  # refused now, not in the audio loop
        stepper = model.stepper() if self._step_heads else None     # its interpreter too
        with self._lock:
            self._pending_model = (model, detection, stepper)

    def set_detection(self, detection: DetectionSettings) -> None:
        """New thresholds/window/suppression/latency for the primary model from its next
        inference step (thread-safe)."""
        detection.validate(len(self.model.classes))
        with self._lock:
            self._pending_detection = detection

    def reset(self) -> None:
        """Forget all streaming state (frontends, feature windows, detector histories and
        held-back samples)."""
        self._stream_samples += len(self._tail)
        self._tail = _NO_SAMPLES
        for s in self._streams:
            s.frontend.reset()
            s.restart(self._stream_samples)
        for h in self._heads:
            h.detector.reset()
            if h.stepper is not None:
                h.stepper.reset()
            h.next_inference = self._stream_samples + h.period

    def flush(self) -> list[Detection]:
        """At the end of a finite stream: compute what the frontends hold back and run the
        heads up to the last sample fed; returns the detections raised."""
        for s in self._streams:
            s.flush()
        return self._feed(_NO_SAMPLES)

    def close(self) -> None:
        self.reset()

    @property
    def time_ms(self) -> int:
        return self._stream_samples * 1000 // self.model.frontend.sample_rate_hz

    # ---------------------------------------------------------------- streaming
    def feed(self, samples: np.ndarray) -> list[Detection]:
        """Consume audio; returns the detections raised by it (in order)."""
        x = np.asarray(samples, dtype=np.int16)
        gain = self.detection.volume_gain
        if gain and gain != 1.0:
            x = np.clip(x.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
        if len(x):
            f = x.astype(np.float32)
            rms = math.sqrt(float(np.dot(f, f)) / len(f))
            self.stats.audio_rms_dbfs = 20 * math.log10(max(rms, 1e-3) / 32768.0)
            self.stats.samples += len(x)
        return self._feed(x)

    def _feed(self, x: np.ndarray) -> list[Detection]:
        """The whole chunk goes through each stream's frontend in one call (cheap per sample);
        frames are then released by their end position, one inference boundary at a time, up
        to where every stream has computed its frames (the horizon; a stream holding frames
        back moves it behind the audio fed). A stream (re)started at a boundary runs the
        samples from there on, kept in the tail."""
        start = self._stream_samples
        self._tail = np.concatenate([self._tail, x]) if len(self._tail) else x
        for s in self._streams:
            s.run(x)
        detections: list[Detection] = []
        while True:
            boundary = min(h.next_inference for h in self._heads)
            if boundary > min(s.horizon for s in self._streams):
                break
            for s in self._streams:
                s.release(boundary)
            self._stream_samples = boundary
            for head in list(self._heads):
                if head.next_inference != boundary:
                    continue
                detection = self._infer(head)
                head.next_inference = boundary + head.period
                if detection is not None:
                    detections.append(detection)
            self._drop_unused_streams()
            for s in self._new_streams:
                s.run(self._tail[boundary - start:])
            self._new_streams.clear()
        done = min(s.horizon for s in self._streams)
        for s in self._streams:
            s.release(done)
        # What is held back, as an own copy (x is the caller's buffer); no allocation for
        # streams that hold nothing back.
        rest = self._tail[done - start:]
        self._tail = rest.copy() if len(rest) else _NO_SAMPLES
        self._stream_samples = done
        return detections

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending_model = self._pending_model, None
            detection, self._pending_detection = self._pending_detection, None
        head = self._heads[0]
        if pending is not None:
            model, det, stepper = pending
            log.info("switching model %s -> %s", head.model.name, model.name)
            new = self._make_head(model, det, stepper)
            self._heads[0] = head = new
        if detection is not None:
            head.detection = detection
            head.detector.set_settings(detection)
            head.period = self._period_of(detection, head.model)

    def _infer(self, head: _Head) -> Optional[Detection]:
        """One inference step of `head` at the current stream position."""
        primary = head is self._heads[0]
        if primary:
            self._apply_pending()
            head = self._heads[0]
        window = head.stream.window(head.frames)
        if window is None:      # an embedding stream still warming up: no scores yet
            return None
        t0 = time.perf_counter()
        new, head.seen = head.stream.moved - head.seen, head.stream.moved   # frames new to this head
        if head.stepper is not None:
            scores = head.stepper.scores(window, new)
        elif head.quantizer is not None:
            scores = head.model.infer_input(head.quantizer.update(window, new))
        else:
            scores = head.model.infer(window)
        self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        self.stats.inferences += 1
        now = self.time_ms
        if primary:
            self.stats.last_scores = scores
            if self.on_scores is not None:
                self.on_scores(now, scores)
        result = head.detector.process(now, scores)
        if primary:
            self.stats.last_top, self.stats.last_score = result.class_index, result.score
        if not result.detected:
            return None
        if result.reset_frontend:
            self._reset_stream(head.stream)
        self.stats.detections += 1
        m = head.model
        return Detection(keyword=m.classes[result.class_index], score=result.score, time_ms=now,
                         class_index=result.class_index, model_name=m.name, model_version=m.version,
                         model_sha256=m.sha256, device_id=self.device_id)

    def _reset_stream(self, stream: _Stream) -> None:
        """MLTK's reset on detection (suppression_ms <= 1) starts a frontend's adaptive state
        (noise estimate, PCAN) over: for a frontend that has one (`resets_on_detection`; not
        the speech embedding), and only for a stream with one head, since a shared stream's
        other heads must not lose their features."""
        if not stream.frontend.resets_on_detection:
            return
        if sum(h.stream is stream for h in self._heads) != 1:
            log.debug("not resetting a shared frontend on detection")
            return
        stream.frontend.reset()
        stream.restart(self._stream_samples, forget=False)
        if stream not in self._new_streams:
            self._new_streams.append(stream)
