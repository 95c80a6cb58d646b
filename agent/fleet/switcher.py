"""Switching the agent's model: install a received one, confirm it, roll it back, reload.

`ModelSwitcher.activate` is the push receiver's last step: self-test the assembled model,
resolve this device's detection settings for it (before anything is reported active: a
setting meant for another model is left out and named, never a reason for the agent to die),
install it as pending, switch between two inference steps, and watch it. A pending model that
runs inferences for `confirm_after_s` is confirmed; one that does not is rolled back
(health.py has the whole rule, including what a crash or a power cut counts for).
"""
from __future__ import annotations

import logging
import time
from typing import Optional

from keywire.protocol.errors import FleetError, KeywireError, ModelRejected
from keywire.protocol.manifest import Manifest
from keywire.protocol.messages import ROLLED_BACK, ModelInfo, Progress

from ..component import AgentContext, Tick
from ..model import KeywordModel
from .health import HealthWatch, RunRecord
from .selftest import DeviceProfile, self_test
from .status import StatusPublisher, model_info
from .store import ModelStore
from .transport import FleetTransport

log = logging.getLogger("keywire.fleet")


def detection_note(agent: AgentContext, model: KeywordModel) -> str:
    """Check that `model` can run with this device's detection settings; returns the overrides
    left out for it ('' when none). `ModelRejected` when even the model's own settings do not
    fit its classes. (The rule itself, overrides resolved against a model's classes, is the
    detection table's `DetectionOverrides.resolve`.)"""
    settings, dropped = agent.config.detection.resolve(model.detection, len(model.classes))
    problem = settings.class_mismatch(len(model.classes))
    if problem:
        raise ModelRejected(f"the model's detection settings do not fit it: {problem}")
    return "; ".join(f"{d}: using the model's own thresholds" for d in dropped)


class ModelSwitcher:
    """Activation, health watch, confirmation, rollback and reload of the agent's primary model."""

    def __init__(self, store: ModelStore, runs: RunRecord, status: StatusPublisher, transport: FleetTransport,
                 max_model_bytes: int, confirm_after_s: float) -> None:
        self.store = store
        self.runs = runs
        self.status = status
        self.transport = transport
        self.max_model_bytes = max_model_bytes
        self.confirm_after_s = confirm_after_s
        self.agent: Optional[AgentContext] = None
        self._watch: Optional[HealthWatch] = None
        self._push_ids: dict[str, str] = {}  # model sha256 -> push_id of the manifest that installed it

    def start(self, agent: AgentContext) -> None:
        """The agent runs: adopt its model; keep watching one still pending from before a restart."""
        self.agent = agent
        model = agent.model
        self.store.adopt(model.data, model_info(model))
        st = self.store.state()
        if st.pending and st.active and st.active.sha256 == model.sha256:
            self.runs.began(model.sha256)
            self._watch_model(model.sha256)

    def stop(self, failure: Optional[BaseException]) -> None:
        """The agent stops: record how a pending model's run ended (health.py)."""
        st = self.store.state()
        if st.pending and st.active is not None:
            self.runs.ended(st.active.sha256, failure=_model_failure(failure))

    def profile(self) -> DeviceProfile:
        assert self.agent is not None
        return DeviceProfile(sample_rates=(self.agent.model.frontend.sample_rate_hz,),
                             max_model_bytes=self.max_model_bytes)

    # ------------------------------------------------------------ health (tick from the audio loop)
    def _watch_model(self, sha256: str) -> None:
        assert self.agent is not None
        stats = self.agent.stats()
        self._watch = HealthWatch(sha256, time.monotonic(), stats.inferences, stats.samples)

    def tick(self, tick: Tick) -> None:
        """Audio thread: confirm a new model that runs, roll back one that does not."""
        w = self._watch
        if w is None or self.agent is None or time.monotonic() - w.since < self.confirm_after_s:
            return
        stats = self.agent.stats()
        rate = self.agent.model.frontend.sample_rate_hz
        if stats.inferences > w.inferences:
            self._watch = None
            self.transport.post(self._confirm, w.sha256)
        elif stats.samples - w.samples >= rate * self.confirm_after_s / 2:
            self._watch = None
            self.transport.post(self._auto_rollback, w.sha256, "no inference ran after activation")

    def _confirm(self, sha256: str) -> None:
        st = self.store.state()
        if st.active and st.active.sha256 == sha256:
            self.store.confirm()
            log.info("model %s confirmed healthy", sha256[:12])

    def _auto_rollback(self, sha256: str, reason: str) -> None:
        st = self.store.state()
        if st.active and st.active.sha256 == sha256 and st.pending:
            self.rollback(f"rolled back automatically: {reason}")

    # ------------------------------------------------------------ switching (worker thread)
    def activate(self, data: bytes, m: Manifest) -> str:
        """Self-test, install (pending), switch between two inference steps; returns a note for
        the 'active' report (detection overrides left out for this model)."""
        assert self.agent is not None
        model = self_test(data, m, self.profile())
        note = detection_note(self.agent, model)
        self.store.install(data, model_info(model), m.issued_at)
        self._push_ids = {model.sha256: m.push_id}
        self.runs.began(model.sha256)
        try:
            self.agent.swap_model(model)
        except KeywireError as exc:
            self.store.rollback()
            raise ModelRejected(f"cannot switch to the model: {exc}") from None
        self._watch_model(model.sha256)
        log.info("model %s v%s active (previous kept as last-known-good)%s", model.name, model.version,
                 f"; {note}" if note else "")
        self.status.publish_discovery()
        return note

    def rollback(self, reason: str, blacklist: bool = True) -> ModelInfo:
        """Back to the previous model; reported as rolled back. The current one is blacklisted
        (`blacklist`: it failed here) or deferred (an operator's choice: a later push of it
        installs it again)."""
        assert self.agent is not None
        bad = self.store.state().active
        prev = self.store.rollback(blacklist=blacklist)
        if prev is None:
            raise FleetError("no previous model to roll back to")
        self.agent.swap_model(KeywordModel.load(self.store.path_of(prev.sha256)))
        self._watch = None
        log.warning("model %s -> %s: %s", bad.sha256[:12] if bad else "?", prev.sha256[:12], reason)
        if bad is not None:
            self.status.report(Progress(self.status.device.device_id, bad.sha256, ROLLED_BACK, reason=reason,
                                        version=bad.version, time=time.time(),
                                        manifest=self._push_ids.get(bad.sha256, "")))
        return prev

    def reload(self) -> None:
        """Re-read the active model from disk (verified) and switch to it."""
        assert self.agent is not None
        path = self.store.active_path()
        if path is None:
            raise FleetError("no installed model to reload")
        self.agent.swap_model(KeywordModel.load(path))


def _model_failure(failure: Optional[BaseException]) -> str:
    """Why the loop's end is the model's fault ('' when it is not: a clean stop, or the audio input)."""
    from keywire.protocol.errors import AudioError

    if failure is None or isinstance(failure, (AudioError, KeyboardInterrupt, SystemExit)):
        return ""
    return f"{type(failure).__name__}: {failure}"
