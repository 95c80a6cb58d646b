"""The real `keywire-agent` process under a test-made systemd notify socket.

The test binds an AF_UNIX datagram socket, starts the agent with NOTIFY_SOCKET and
WATCHDOG_USEC pointing at it, feeds raw PCM on the agent's stdin (or stops feeding to
stall the source) and records every sd_notify datagram with its arrival time.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from ..fixtures.paths import REPO

AGENT = REPO / ".venv" / "bin" / "keywire-agent"


def agent_executable() -> str:
    exe = str(AGENT) if AGENT.exists() else shutil.which("keywire-agent")
    if not exe:
        pytest.skip("keywire-agent console script not installed")
    return exe


@dataclass(frozen=True)
class Notification:
    at: float
    fields: dict

    def __contains__(self, key: str) -> bool:
        return key in self.fields


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket; records what arrives."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="kw-notify-", dir="/tmp")  # short path: sun_path is 108 bytes
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._cond:
                self.messages.append(Notification(time.monotonic(), fields))
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[Notification], bool], timeout: float, after: float = 0.0) -> Notification:
        """The first message after time `after` matching `pred`; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m.at >= after and pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching notification in {timeout} s; got "
                                         f"{[m.fields for m in self.messages[-10:]]}")
                self._cond.wait(left)

    def between(self, key: str, start: float, end: float) -> list[Notification]:
        with self._cond:
            return [m for m in self.messages if start <= m.at < end and key in m.fields]

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class AgentProcess:
    """`keywire-agent run --source stdin` fed with looping audio paced in real time."""

    def __init__(self, args: list[str], audio: np.ndarray, notify: Optional[NotifySocket],
                 watchdog_usec: int = 1_000_000, cwd: Optional[Path] = None) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.audio = np.asarray(audio, dtype="<i2")
        self.flowing = threading.Event()
        self.flowing.set()
        self.detections: list[dict] = []
        self.stderr_lines: list[str] = []
        self.proc = subprocess.Popen([agent_executable(), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
        self._threads = [threading.Thread(target=f, daemon=True)
                         for f in (self._feed, self._read_stdout, self._read_stderr)]
        for t in self._threads:
            t.start()

    def _feed(self) -> None:
        chunk = 1600  # 100 ms at 16 kHz
        pos = 0
        start = time.monotonic()
        sent = 0
        assert self.proc.stdin is not None
        while self.proc.poll() is None:
            if not self.flowing.is_set():
                self.flowing.wait(0.1)
                start = time.monotonic() - sent / 16000
                continue
            part = self.audio[pos:pos + chunk]
            pos = pos + chunk if pos + chunk < len(self.audio) else 0
            try:
                self.proc.stdin.write(part.tobytes())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return
            sent += len(part)
            delay = start + sent / 16000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.detections.append({**json.loads(line), "_at": time.monotonic()})
            except ValueError:
                pass

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.decode(errors="replace").rstrip())

    def detections_between(self, start: float, end: float = float("inf")) -> list[dict]:
        return [d for d in list(self.detections) if start <= d["_at"] < end]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        print(f"agent exit {self.proc.poll()}; stderr:", *self.stderr_lines[-30:], sep="\n")  # shown on failure
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
