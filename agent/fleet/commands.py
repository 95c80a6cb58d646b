"""Remote commands on `<device>/cmd`: set_detection, rollback, reload, status.

Every command gets one reply on `<device>/reply` (ok, or the reason it was refused) and a
fresh retained status. Detection settings set remotely are checked against the detection
table's limits, persisted in `<state_dir>/fleet-detection.json` and restored at every start.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from keywire.protocol.detection import DetectionOverrides
from keywire.protocol.errors import ConfigError, KeywireError, MessageError
from keywire.protocol.messages import Command, Reply

from ..component import AgentContext
from .atomic import write_atomic
from .status import StatusPublisher
from .switcher import ModelSwitcher
from .transport import FleetTransport

log = logging.getLogger("keywire.fleet")


class CommandHandler:
    """Decodes, runs and answers the device's commands (worker thread)."""

    def __init__(self, state_dir: Path, switcher: ModelSwitcher, status: StatusPublisher,
                 transport: FleetTransport) -> None:
        self.switcher = switcher
        self.status = status
        self.transport = transport
        self.agent: Optional[AgentContext] = None
        self._overrides_path = Path(state_dir) / "fleet-detection.json"

    def start(self, agent: AgentContext) -> None:
        """Apply the detection settings set remotely before the last restart."""
        self.agent = agent
        saved = self._saved_overrides()
        if saved:
            try:
                self._set_detection(saved, persist=False)
            except KeywireError as exc:
                log.warning("ignoring saved detection settings: %s", exc)

    def handle(self, payload: bytes) -> None:
        device_id = self.status.device.device_id
        try:
            cmd = Command.from_json(payload)
        except MessageError as exc:
            log.warning("rejected command: %s", exc)
            self._reply(Reply(device_id, "?", False, reason=str(exc), time=time.time()))
            self.status.fail(f"rejected command: {exc}")
            return
        try:
            if cmd.action == "set_detection":
                self._set_detection(cmd.detection)
            elif cmd.action == "rollback":
                # the operator's choice, not a fault of the model: deferred, never blacklisted
                self.switcher.rollback("rolled back by command", blacklist=False)
            elif cmd.action == "reload":
                self.switcher.reload()
            ok, reason = True, ""
        except KeywireError as exc:
            ok, reason = False, str(exc)
            log.warning("command %s failed: %s", cmd.action, reason)
            self.status.reason = f"command {cmd.action} failed: {reason}"
        self._reply(Reply(device_id, cmd.action, ok, id=cmd.id, reason=reason, time=time.time()))
        self.status.publish_status()

    def _reply(self, r: Reply) -> None:
        self.transport.publish(self.status.device.reply, r.to_json(), qos=1)

    def _set_detection(self, values: dict[str, Any], persist: bool = True) -> None:
        assert self.agent is not None
        ov = DetectionOverrides.from_mapping(values, ConfigError, "set_detection: ")  # the table's names and limits
        self.agent.set_detection(ov)
        if persist:
            saved = self._saved_overrides()
            saved.update(ov.to_wire())
            write_atomic(self._overrides_path, json.dumps(saved, sort_keys=True).encode())

    def _saved_overrides(self) -> dict[str, Any]:
        try:
            d = json.loads(self._overrides_path.read_bytes())
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}
