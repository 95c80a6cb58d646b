"""Models on the device's disk: the active one, the previous one (last-known-good), staging.

Layout under `<state_dir>/models/`:

    <sha256>.tflite   complete, verified model files (written atomically)
    current.json      which is active and which is the previous one (replaced atomically)
    active.tflite     hard link to the active model: a stable path for the agent config and
                      for reloads (follows current.json; repaired at start after a crash)
    staging/<sha256>/ chunks of a transfer in progress (kept across restarts to resume)

`current.json` is the single switch: a crash or power cut at any moment leaves it naming
either the old or the new model, and the file it names is always complete. A newly installed
model is *pending* until the agent confirms it ran healthily; an agent that restarts too
often with a pending model rolls back to the previous one (`note_boot`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .atomic import fsync_dir, write_atomic
from .manifest import Manifest, sha256_hex
from .messages import ModelInfo

MAX_PENDING_BOOTS = 2


@dataclass(frozen=True)
class StoreState:
    """Contents of current.json."""

    active: Optional[ModelInfo] = None
    previous: Optional[ModelInfo] = None
    pending: bool = False          # active model installed but not yet confirmed healthy
    boots: int = 0                 # agent starts while pending
    issued_at: float = 0.0         # newest accepted manifest (older ones are replays)
    rejected: tuple[str, ...] = () # sha256 of models that failed here: never retried

    def to_json(self) -> bytes:
        d: dict[str, Any] = dataclasses.asdict(self)
        d["active"] = self.active.to_dict() if self.active else None
        d["previous"] = self.previous.to_dict() if self.previous else None
        d["rejected"] = list(self.rejected)
        return json.dumps(d, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "StoreState":
        d = json.loads(data)
        return cls(active=ModelInfo.from_dict(d["active"]) if d.get("active") else None,
                   previous=ModelInfo.from_dict(d["previous"]) if d.get("previous") else None,
                   pending=bool(d.get("pending")), boots=int(d.get("boots", 0)),
                   issued_at=float(d.get("issued_at", 0.0)), rejected=tuple(d.get("rejected", ())))


class ModelStore:
    """The device's model files and the active/previous switch."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "models"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.staging_dir = self.dir / "staging"
        self.staging_dir.mkdir(exist_ok=True)
        self._current = self.dir / "current.json"

    # ------------------------------------------------------------ state
    def state(self) -> StoreState:
        try:
            return StoreState.from_json(self._current.read_bytes())
        except FileNotFoundError:
            return StoreState()
        except (ValueError, KeyError, TypeError):
            # current.json is only ever replaced atomically; unreadable means tampering.
            return StoreState()

    def _save(self, state: StoreState) -> StoreState:
        write_atomic(self._current, state.to_json())
        self.sync_active_link(state)
        return state

    @property
    def active_link(self) -> Path:
        return self.dir / "active.tflite"

    def sync_active_link(self, state: Optional[StoreState] = None) -> Optional[Path]:
        """Point active.tflite at the intact active (else previous) model; atomic rename."""
        st = state or self.state()
        for info in (st.active, st.previous):
            if info and self.verify_file(info.sha256):
                target = self.path_of(info.sha256)
                try:
                    if os.path.samefile(self.active_link, target):
                        return self.active_link
                except OSError:
                    pass
                tmp = self.dir / f".active.tmp{os.getpid()}"
                tmp.unlink(missing_ok=True)
                os.link(target, tmp)
                os.replace(tmp, self.active_link)
                fsync_dir(self.dir)
                return self.active_link
        return None

    def path_of(self, sha256: str) -> Path:
        return self.dir / f"{sha256}.tflite"

    def active_path(self) -> Optional[Path]:
        """The active model's file if it exists and is intact, else the previous one, else None."""
        st = self.state()
        for info in (st.active, st.previous):
            if info and self.verify_file(info.sha256):
                return self.path_of(info.sha256)
        return None

    def verify_file(self, sha256: str) -> bool:
        try:
            return sha256_hex(self.path_of(sha256).read_bytes()) == sha256
        except OSError:
            return False

    # ------------------------------------------------------------ transitions
    def install(self, data: bytes, info: ModelInfo, issued_at: float) -> Path:
        """Write the model file, then switch: previous := active, active := new (pending)."""
        path = self.path_of(info.sha256)
        if not self.verify_file(info.sha256):
            write_atomic(path, data)
        st = self.state()
        prev = st.active if st.active and st.active.sha256 != info.sha256 else st.previous
        self._save(StoreState(active=info, previous=prev, pending=True, boots=0,
                              issued_at=max(st.issued_at, issued_at), rejected=st.rejected))
        self.collect_garbage()
        return path

    def adopt(self, data: bytes, info: ModelInfo) -> None:
        """Record a model the agent was started with (no store yet) as the active, confirmed one."""
        if not self.verify_file(info.sha256):
            write_atomic(self.path_of(info.sha256), data)
        st = self.state()
        if st.active is None or st.active.sha256 != info.sha256:
            self._save(dataclasses.replace(st, active=info, pending=False, boots=0))

    def confirm(self) -> None:
        st = self.state()
        if st.pending:
            self._save(dataclasses.replace(st, pending=False, boots=0))

    def note_boot(self) -> bool:
        """Count an agent start; True (and rolled back) when a pending model keeps failing."""
        st = self.state()
        if not st.pending:
            return False
        if st.boots + 1 >= MAX_PENDING_BOOTS and st.previous is not None:
            self.rollback()
            return True
        self._save(dataclasses.replace(st, boots=st.boots + 1))
        return False

    def rollback(self) -> Optional[ModelInfo]:
        """Make the previous model active again; the failed one is remembered as rejected."""
        st = self.state()
        if st.previous is None:
            return None
        rejected = st.rejected
        if st.active and st.active.sha256 not in rejected:
            rejected = (rejected + (st.active.sha256,))[-16:]
        self._save(StoreState(active=st.previous, previous=None, pending=False, boots=0,
                              issued_at=st.issued_at, rejected=rejected))
        return st.previous

    def reject(self, sha256: str, issued_at: float = 0.0) -> None:
        st = self.state()
        if sha256 not in st.rejected:
            self._save(dataclasses.replace(st, rejected=(st.rejected + (sha256,))[-16:],
                                           issued_at=max(st.issued_at, issued_at)))

    def collect_garbage(self) -> None:
        """Delete model files that are neither active nor previous."""
        st = self.state()
        keep = {i.sha256 for i in (st.active, st.previous) if i}
        for p in self.dir.glob("*.tflite"):
            if p.stem not in keep and p != self.active_link:
                p.unlink(missing_ok=True)
        for p in self.dir.glob(".*.tmp*"):
            p.unlink(missing_ok=True)

    def staging(self, manifest: Manifest) -> "Staging":
        return Staging(self.staging_dir / manifest.sha256, manifest)

    def clear_staging(self, keep: str = "") -> None:
        for p in self.staging_dir.iterdir():
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)


class Staging:
    """Verified chunks of one transfer on disk; survives restarts so transfers resume."""

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self.dir = directory
        self.manifest = manifest
        self.dir.mkdir(parents=True, exist_ok=True)
        self._have = {i for i in range(manifest.n_chunks) if self._ok(i)}

    def _path(self, index: int) -> Path:
        return self.dir / f"chunk-{index:05d}"

    def _ok(self, index: int) -> bool:
        try:
            return sha256_hex(self._path(index).read_bytes()) == self.manifest.chunks[index]
        except OSError:
            return False

    @property
    def have(self) -> set[int]:
        return set(self._have)

    def missing(self) -> list[int]:
        return [i for i in range(self.manifest.n_chunks) if i not in self._have]

    @property
    def complete(self) -> bool:
        return len(self._have) == self.manifest.n_chunks

    def put(self, index: int, data: bytes) -> bool:
        """Store a chunk after checking its hash; False for a duplicate. Raises ValueError if corrupt."""
        if not 0 <= index < self.manifest.n_chunks:
            raise ValueError(f"chunk index {index} outside 0..{self.manifest.n_chunks - 1}")
        if sha256_hex(data) != self.manifest.chunks[index]:
            raise ValueError(f"chunk {index} is corrupt (sha256 mismatch, {len(data)} bytes)")
        if index in self._have:
            return False
        # chunks are re-verified on load, so a torn chunk file after a crash is simply fetched again
        self._path(index).write_bytes(data)
        self._have.add(index)
        return True

    def assemble(self) -> bytes:
        return b"".join(self._path(i).read_bytes() for i in range(self.manifest.n_chunks))

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        fsync_dir(self.dir.parent)
