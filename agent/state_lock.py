"""One agent per state directory: an exclusive `flock` on `<state_dir>/agent.lock`.

Two agents on one state directory would append to the same event spool, replace each other's
`current.json` and roll back each other's models. The first agent takes the lock at start
and holds it for its whole life (the kernel releases it when the process ends, even after
SIGKILL, so a crash never leaves a stale lock); a second one gets `ConfigError` naming the
directory and the holder's pid, and exits before touching anything.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from keywire.protocol.errors import ConfigError, FileAccessError, describe_os_error

LOCK_NAME = "agent.lock"


class StateLock:
    """Holds the state directory's lock until `release` (or the process ends)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "StateLock":
        """Take the lock or raise `ConfigError` (another agent holds it) / `FileAccessError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FileAccessError(f"cannot use state dir {self.path.parent}: {describe_os_error(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(f"state dir {self.path.parent} is in use by another keywire-agent"
                              + (f" (pid {holder})" if holder else "")) from None
        except OSError as exc:
            os.close(fd)
            raise FileAccessError(f"cannot lock {self.path}: {describe_os_error(exc)}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "StateLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
