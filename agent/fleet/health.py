"""Is a newly activated model healthy? The live watch, and the verdict on the previous run.

A pushed model is *pending* until it has run inferences for `confirm_after_s`. While it is
pending, every agent start asks how the previous run ended, from two files in the model
store's folder:

    run.json   which model the run used and how it ended: "running" (written when the
               pending model starts), "stopped" (clean stop), "failed" (the processing loop
               ended on an error)
    fault.log  Python's faulthandler writes a traceback here when the process dies of a
               fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL: a crash inside the interpreter
               or a kernel; SIGABRT: also what systemd's watchdog sends when the processing
               loop stopped making progress)

The rule (how crash rollbacks are counted by cause):

- **model fault**: the pending model's run died of a fatal signal (fault.log not empty) or
  its processing loop failed with an error other than an audio-input error. Two faults
  inside the pending window roll back to the last-known-good model and blacklist the new
  one (`rejected`: never installed again, a new version must be pushed).
- **unclean stop**: the run ended without a word: SIGKILL, the OOM killer, a power cut, a
  board reset. It says nothing about the model, so it is never blacklisted. After
  `MAX_UNCLEAN_STOPS` of them inside the window the device still goes back to the
  last-known-good model (so it keeps listening) and defers the new one: the manifest that
  brought it is not retried, a later push of the same model installs it again.
- **clean stop** (SIGTERM, systemctl restart): not counted.
"""
from __future__ import annotations

import enum
import faulthandler
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from .atomic import write_atomic

log = logging.getLogger("keywire.fleet.health")

MAX_MODEL_FAULTS = 2
MAX_UNCLEAN_STOPS = 3


class RunEnd(str, enum.Enum):
    """How the previous run of the agent ended."""

    CLEAN = "clean"          # stopped on request
    FAULT = "fault"          # the model's fault: fatal signal, or the loop failed
    UNCLEAN = "unclean"      # killed, power lost: no evidence either way
    NONE = "none"            # no run of this model recorded


@dataclass
class HealthWatch:
    """A newly active model, healthy once it ran inferences for the confirmation window."""

    sha256: str
    since: float
    inferences: int
    samples: int


class RunRecord:
    """run.json and fault.log of one state directory (see the module's rule)."""

    def __init__(self, models_dir: Path) -> None:
        self.path = Path(models_dir) / "run.json"
        self.fault_path = Path(models_dir) / "fault.log"

    def previous_end(self, sha256: str) -> tuple[RunEnd, str]:
        """How the last run of model `sha256` ended, with the evidence (read before `began`)."""
        try:
            rec = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            rec = None
        if not isinstance(rec, dict) or rec.get("sha256") != sha256:
            return RunEnd.NONE, ""
        state = rec.get("state")
        if state == "stopped":
            return RunEnd.CLEAN, "stopped cleanly"
        if state == "failed":
            return RunEnd.FAULT, f"the model's run failed: {str(rec.get('reason', ''))[:200]}"
        fault = self._fault_text()
        if fault:
            return RunEnd.FAULT, f"the agent crashed: {fault}"
        return RunEnd.UNCLEAN, "the agent was killed or lost power"

    def _fault_text(self) -> str:
        try:
            with open(self.fault_path, "rb") as f:
                text = f.read(4096).decode("utf-8", "replace")
        except OSError:
            return ""
        first = text.strip().splitlines()[:1]
        return first[0][:200] if first else ""

    def began(self, sha256: str) -> None:
        """A run of `sha256` starts (or the running agent switched to it)."""
        self._write(sha256, "running")

    def ended(self, sha256: str, failure: str = "") -> None:
        """The run ends: cleanly, or with `failure` (the model's fault)."""
        self._write(sha256, "failed" if failure else "stopped", failure)

    def _write(self, sha256: str, state: str, reason: str = "") -> None:
        try:
            write_atomic(self.path, json.dumps({"sha256": sha256, "state": state, "reason": reason,
                                                "pid": os.getpid()}).encode())
        except OSError as exc:
            log.warning("cannot record the run state in %s: %s", self.path, exc.strerror or exc)

    def catch_fatal_signals(self) -> None:
        """From now on a fatal signal leaves its traceback in fault.log (emptied here, once per
        process: faulthandler is process-wide, so is the file it writes to)."""
        global _fault_file
        if _fault_file is not None and _fault_file.name == str(self.fault_path):
            return
        try:
            f = open(self.fault_path, "w")
        except OSError as exc:
            log.warning("cannot record crashes in %s: %s", self.fault_path, exc.strerror or exc)
            return
        faulthandler.enable(f, all_threads=True)
        if _fault_file is not None:
            _fault_file.close()
        _fault_file = f

    def release(self) -> None:
        global _fault_file
        if _fault_file is not None and _fault_file.name == str(self.fault_path):
            faulthandler.disable()
            _fault_file.close()
            _fault_file = None


_fault_file: Optional[IO[str]] = None  # where faulthandler writes in this process
