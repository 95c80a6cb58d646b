"""Models on the device's disk: the active one, the previous one (last-known-good), staging.

Layout under `<state_dir>/models/`:

    <sha256>.tflite   complete, verified model files (written atomically)
    current.json      which is active and which is the previous one (replaced atomically)
    active.tflite     hard link to the active model: a stable path for the agent config and
                      for reloads (follows current.json; repaired at start after a crash)
    staging/<sha256>/ chunks of a transfer in progress (kept across restarts to resume)
    run.json, fault.log  how the last run of a pending model ended (health.py)

`current.json` is the single switch: a crash or power cut at any moment leaves it naming
either the old or the new model, and the file it names is always complete. A newly installed
model is *pending* until the agent confirms it ran healthily; an agent whose pending model
keeps failing rolls back to the previous one (`note_boot`, counted by cause as health.py
explains). A digest becomes a file name only after it was checked to be 64 hex digits.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from keywire.protocol.errors import FleetError
from keywire.protocol.manifest import Manifest, sha256_hex
from keywire.protocol.messages import ModelInfo

from .atomic import fsync_dir, write_atomic
from .health import MAX_MODEL_FAULTS, MAX_UNCLEAN_STOPS, RunEnd

KEEP_REMEMBERED = 16  # rejected / deferred models remembered
_DIGEST = re.compile(r"[0-9a-f]{64}")


def checked_digest(sha256: str) -> str:
    """`sha256` if it is 64 lower-case hex digits (safe as a file name), else `FleetError`."""
    if not isinstance(sha256, str) or not _DIGEST.fullmatch(sha256):
        raise FleetError(f"not a sha256 digest: {str(sha256)[:80]!r}")
    return sha256


def _info_dict(info: Optional[ModelInfo]) -> Optional[dict[str, Any]]:
    return None if info is None else {**dataclasses.asdict(info), "classes": list(info.classes)}


def _info_of(d: Any) -> Optional[ModelInfo]:
    if not d:
        return None
    return ModelInfo(name=str(d["name"]), version=str(d["version"]), sha256=checked_digest(d["sha256"]),
                     classes=tuple(str(c) for c in d.get("classes", ())))


@dataclass(frozen=True)
class StoreState:
    """Contents of current.json."""

    active: Optional[ModelInfo] = None
    previous: Optional[ModelInfo] = None
    pending: bool = False          # active model installed but not yet confirmed healthy
    faults: int = 0                # runs of the pending model that ended in a model fault
    unclean: int = 0               # runs of the pending model killed without evidence (power cut)
    issued_at: float = 0.0         # newest accepted manifest (older ones are replays)
    rejected: tuple[str, ...] = () # sha256 of models that failed here: never retried
    deferred: tuple[str, ...] = () # rolled back after unclean stops or by command: retried by a newer manifest

    def to_json(self) -> bytes:
        d: dict[str, Any] = dataclasses.asdict(self)
        d["active"], d["previous"] = _info_dict(self.active), _info_dict(self.previous)
        d["rejected"], d["deferred"] = list(self.rejected), list(self.deferred)
        return json.dumps(d, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "StoreState":
        d = json.loads(data)
        return cls(active=_info_of(d.get("active")), previous=_info_of(d.get("previous")),
                   pending=bool(d.get("pending")), faults=int(d.get("faults", 0)),
                   unclean=int(d.get("unclean", 0)), issued_at=float(d.get("issued_at", 0.0)),
                   rejected=tuple(str(x) for x in d.get("rejected", ())),
                   deferred=tuple(str(x) for x in d.get("deferred", ())))


@dataclass(frozen=True)
class BootVerdict:
    """What `note_boot` decided about a pending model."""

    rolled_back: bool = False
    blacklisted: bool = False
    reason: str = ""


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
        except (ValueError, KeyError, TypeError, AttributeError, FleetError):
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
        return self.dir / f"{checked_digest(sha256)}.tflite"

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
        except (OSError, FleetError):
            return False

    # ------------------------------------------------------------ transitions
    def install(self, data: bytes, info: ModelInfo, issued_at: float) -> Path:
        """Write the model file, then switch: previous := active, active := new (pending)."""
        path = self.path_of(info.sha256)
        if not self.verify_file(info.sha256):
            write_atomic(path, data)
        st = self.state()
        prev = st.active if st.active and st.active.sha256 != info.sha256 else st.previous
        self._save(StoreState(active=info, previous=prev, pending=True, issued_at=max(st.issued_at, issued_at),
                              rejected=st.rejected, deferred=tuple(d for d in st.deferred if d != info.sha256)))
        self.collect_garbage()
        return path

    def adopt(self, data: bytes, info: ModelInfo) -> None:
        """Record a model the agent was started with (no store yet) as the active, confirmed one."""
        if not self.verify_file(info.sha256):
            write_atomic(self.path_of(info.sha256), data)
        st = self.state()
        if st.active is None or st.active.sha256 != info.sha256:
            self._save(dataclasses.replace(st, active=info, pending=False, faults=0, unclean=0))

    def confirm(self) -> None:
        st = self.state()
        if st.pending:
            self._save(dataclasses.replace(st, pending=False, faults=0, unclean=0))

    def note_boot(self, end: RunEnd, evidence: str = "") -> BootVerdict:
        """Count how the pending model's last run ended (health.py's rule); roll back to the
        previous model after `MAX_MODEL_FAULTS` faults (blacklisting the new one) or after
        `MAX_UNCLEAN_STOPS` unexplained deaths (deferring it, not blacklisting it)."""
        st = self.state()
        if not st.pending or st.previous is None or end in (RunEnd.CLEAN, RunEnd.NONE):
            return BootVerdict()
        if end is RunEnd.FAULT:
            st = dataclasses.replace(st, faults=st.faults + 1)
            if st.faults >= MAX_MODEL_FAULTS:
                self._save(st)
                self.rollback()
                return BootVerdict(True, True, f"the new model failed {st.faults} times ({evidence})")
        else:
            st = dataclasses.replace(st, unclean=st.unclean + 1)
            if st.unclean >= MAX_UNCLEAN_STOPS:
                self._save(st)
                self.rollback(blacklist=False)
                return BootVerdict(True, False, f"the agent stopped uncleanly {st.unclean} times with the new "
                                                f"model ({evidence}); it is not blacklisted: push it again to retry")
        self._save(st)
        return BootVerdict(reason=evidence)

    def rollback(self, blacklist: bool = True) -> Optional[ModelInfo]:
        """Make the previous model active again; the failed one is remembered as rejected
        (`blacklist`) or as deferred (retried only by a newer manifest)."""
        st = self.state()
        if st.previous is None:
            return None
        rejected, deferred = st.rejected, st.deferred
        bad = st.active.sha256 if st.active else ""
        if bad and blacklist and bad not in rejected:
            rejected = (rejected + (bad,))[-KEEP_REMEMBERED:]
        if bad and not blacklist and bad not in deferred:
            deferred = (deferred + (bad,))[-KEEP_REMEMBERED:]
        self._save(StoreState(active=st.previous, previous=None, pending=False, issued_at=st.issued_at,
                              rejected=rejected, deferred=deferred))
        return st.previous

    def reject(self, sha256: str, issued_at: float = 0.0) -> None:
        st = self.state()
        if sha256 not in st.rejected:
            self._save(dataclasses.replace(st, rejected=(st.rejected + (checked_digest(sha256),))[-KEEP_REMEMBERED:],
                                           issued_at=max(st.issued_at, issued_at)))

    def collect_garbage(self) -> None:
        """Delete model files that are neither active nor previous."""
        st = self.state()
        keep = {i.sha256 for i in (st.active, st.previous) if i}
        for p in self.dir.glob("*.tflite"):
            if p.stem not in keep and p.name != self.active_link.name:
                p.unlink(missing_ok=True)
        for p in self.dir.glob(".*.tmp*"):
            p.unlink(missing_ok=True)

    def staging(self, manifest: Manifest) -> "Staging":
        return Staging(self.staging_dir / checked_digest(manifest.sha256), manifest)

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
