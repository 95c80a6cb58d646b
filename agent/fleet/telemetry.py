"""Periodic telemetry: audio level and activity, inference rate and latency, detections, resources.

`TelemetryMeter` is fed from the agent loop (`observe`, `count_detection`) and turns what
happened since the last report into a `Telemetry` message (`report`). Detections per keyword
per hour are counted over a sliding hour.
"""
from __future__ import annotations

import os
import resource
import threading
import time
from collections import Counter, defaultdict, deque
from typing import Deque, Sequence

import numpy as np

from keywire.protocol.messages import Telemetry

ACTIVITY_DBFS = -50.0


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class TelemetryMeter:
    """Accumulates one reporting interval (fed from the audio thread, read by the fleet worker)."""

    def __init__(self, device_id: str, clock=time.monotonic) -> None:
        self.device_id = device_id
        self._clock = clock
        self._lock = threading.Lock()
        self._start = self._born = clock()
        self._cpu0 = cpu_seconds()
        self._inferences0 = 0
        self._level_sum = 0.0
        self._level_n = 0
        self._active_n = 0
        self._hour: Deque[tuple[float, str]] = deque()
        self.totals: dict[str, int] = defaultdict(int)

    def observe(self, audio_dbfs: float) -> None:
        """One pass of the audio loop with its level."""
        with self._lock:
            self._observe(audio_dbfs)

    def _observe(self, audio_dbfs: float) -> None:
        self._level_sum += audio_dbfs
        self._level_n += 1
        self._active_n += audio_dbfs > ACTIVITY_DBFS

    def count_detection(self, keyword: str) -> None:
        with self._lock:
            self.totals[keyword] += 1
            self._hour.append((self._clock(), keyword))

    def report(self, inferences: int, latencies_ms: Sequence[float], dropped_audio: int,
               spool_pending: int, spool_dropped: int = 0, spool_corrupt: int = 0) -> Telemetry:
        """The interval's figures; starts the next interval."""
        with self._lock:
            return self._report(inferences, latencies_ms, dropped_audio, spool_pending, spool_dropped, spool_corrupt)

    def _report(self, inferences: int, latencies_ms: Sequence[float], dropped_audio: int,
                spool_pending: int, spool_dropped: int, spool_corrupt: int) -> Telemetry:
        now = self._clock()
        dt = max(now - self._start, 1e-6)
        while self._hour and self._hour[0][0] < now - 3600:
            self._hour.popleft()
        window_s = min(3600.0, max(now - self._born, 1.0))  # a rate over the last hour (or uptime)
        per_hour = {kw: round(n * 3600.0 / window_s, 3) for kw, n in Counter(kw for _, kw in self._hour).items()}
        lat = np.asarray(list(latencies_ms)[-1000:], dtype=np.float64)
        cpu = cpu_seconds()
        t = Telemetry(
            device_id=self.device_id, time=time.time(), interval_s=round(dt, 3),
            audio_level_dbfs=round(self._level_sum / self._level_n, 2) if self._level_n else -120.0,
            audio_activity=round(self._active_n / self._level_n, 3) if self._level_n else 0.0,
            inferences_per_s=round((inferences - self._inferences0) / dt, 3),
            latency_ms_p50=round(float(np.percentile(lat, 50)), 3) if lat.size else 0.0,
            latency_ms_p99=round(float(np.percentile(lat, 99)), 3) if lat.size else 0.0,
            detections_per_hour=per_hour, detections_total=dict(self.totals),
            dropped_audio=int(dropped_audio), cpu_percent=round(100.0 * (cpu - self._cpu0) / dt, 2),
            rss_bytes=rss_bytes(), spool_pending=spool_pending, spool_dropped=spool_dropped,
            spool_corrupt=spool_corrupt)
        self._start, self._cpu0, self._inferences0 = now, cpu, inferences
        self._level_sum, self._level_n, self._active_n = 0.0, 0, 0
        return t

    def start_at(self, inferences: int) -> None:
        self._inferences0 = inferences
