"""Fetching a dataset archive: streamed, resumable (HTTP Range on a `.part` file), verified by
sha256, extracted into Speech Commands layout, and idempotent once extracted.

The official Speech Commands archives and their published sha256 sums (the sums that
TensorFlow Datasets and torchaudio check) are built in; a caller may name any other URL and sum.
No TensorFlow here: this runs on a plain host.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

from keywire.protocol.errors import ConfigError, ExitCode, KeywireError

MARKER = ".keywire-dataset.json"
DOWNLOAD_DIR = ".download"
ProgressFn = Callable[[int, Optional[int]], None]


class DownloadError(KeywireError):
    """A transfer failed, was cut short, or produced a file whose checksum is wrong."""

    exit_code = ExitCode.DOWNLOAD


class ChecksumError(DownloadError):
    """The downloaded archive's sha256 differs from the published one."""


@dataclass(frozen=True)
class ArchiveInfo:
    """A published dataset archive: where it lives and what its bytes must hash to."""

    name: str
    url: str
    sha256: str
    size: Optional[int] = None


SPEECH_COMMANDS: dict[str, ArchiveInfo] = {
    "1": ArchiveInfo(
        "speech_commands_v0.01",
        "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "2": ArchiveInfo(
        "speech_commands_v0.02",
        "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        2428923189,
    ),
}


def speech_commands_archive(version: str) -> ArchiveInfo:
    """The official archive for version `1`/`2` (also `0.01`/`0.02`, `v2`)."""
    v = version.strip().lower().lstrip("v")
    v = {"0.01": "1", "0.02": "2", "01": "1", "02": "2"}.get(v, v)
    if v not in SPEECH_COMMANDS:
        raise ConfigError(f"unknown Speech Commands version {version!r} (choose 1 or 2)")
    return SPEECH_COMMANDS[v]


@dataclass(frozen=True)
class DownloadSpec:
    """What to fetch and where: `dest` receives the extracted Speech Commands layout."""

    url: str
    sha256: str
    dest: Path
    size: Optional[int] = None
    keep_archive: bool = False
    retries: int = 3
    retry_wait_s: float = 1.0
    timeout_s: float = 60.0
    chunk_bytes: int = 1 << 20

    def validate(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"--url must be an http(s) URL, got {self.url!r}")
        s = self.sha256.strip().lower()
        if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
            raise ConfigError(f"--sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.retries < 0:
            raise ConfigError("--retries must be 0 or more")
        if self.dest.exists() and not self.dest.is_dir():
            raise ConfigError(f"destination {self.dest} exists and is not a folder")

    @property
    def archive_name(self) -> str:
        name = PurePosixPath(urllib.request.urlparse(self.url).path).name
        return name or "archive.tar.gz"


@dataclass(frozen=True)
class DownloadResult:
    """What `download` did: `status` is `downloaded` or `present` (nothing to do)."""

    dest: Path
    status: str
    fetched_bytes: int = 0
    resumed_from: int = 0
    attempts: int = 0
    files: int = 0


def is_present(spec: DownloadSpec) -> bool:
    """True when `dest` already holds this archive's extracted contents (marker written last)."""
    marker = spec.dest / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("sha256") == spec.sha256.lower()


def download(spec: DownloadSpec, progress: Optional[ProgressFn] = None) -> DownloadResult:
    """Fetch, verify, extract; resume a `.part` left by an earlier run; no-op when present."""
    spec.validate()
    if is_present(spec):
        return DownloadResult(spec.dest, "present")
    work = spec.dest / DOWNLOAD_DIR
    work.mkdir(parents=True, exist_ok=True)
    archive = work / spec.archive_name
    fetched = resumed = attempts = 0
    if not (archive.exists() and file_sha256(archive) == spec.sha256.lower()):
        part = archive.with_name(archive.name + ".part")
        resumed = part.stat().st_size if part.exists() else 0
        try:
            fetched, attempts = _fetch(spec, part, progress)
        except DownloadError:
            if not part.exists():  # nothing to resume: leave no empty folders behind
                _remove_empty(work, spec.dest)
            raise
        digest = file_sha256(part)
        if digest != spec.sha256.lower():
            part.unlink()
            raise ChecksumError(f"sha256 mismatch for {spec.url}: expected {spec.sha256.lower()}, "
                                f"got {digest} (the download was removed; run again to refetch)")
        part.replace(archive)
    files = extract(archive, spec.dest)
    (spec.dest / MARKER).write_text(json.dumps(
        {"url": spec.url, "sha256": spec.sha256.lower(), "files": files}, indent=2) + "\n")
    if not spec.keep_archive:
        archive.unlink()
        if not any(work.iterdir()):
            work.rmdir()
    return DownloadResult(spec.dest, "downloaded", fetched, resumed, attempts, files)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_CUT = (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, urllib.error.URLError)


def _fetch(spec: DownloadSpec, part: Path, progress: Optional[ProgressFn]) -> tuple[int, int]:
    """Fill `part` to the end of the remote file, retrying with Range after a cut connection."""
    fetched = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            fetched += _fetch_once(spec, part, progress)
            return fetched, attempt
        except _Interrupted as exc:
            fetched += exc.got
            if attempt > spec.retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"transfer of {spec.url} interrupted at {have} bytes ({exc.reason}); "
                                    f"run the command again to resume") from None
            time.sleep(spec.retry_wait_s * attempt)


class _Interrupted(Exception):
    def __init__(self, reason: str, got: int) -> None:
        super().__init__(reason)
        self.reason, self.got = reason, got


def _fetch_once(spec: DownloadSpec, part: Path, progress: Optional[ProgressFn]) -> int:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "keywire-dataset/1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(spec.url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=spec.timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and (spec.size is None or spec.size == have):
            return 0  # the part is already whole; the checksum decides
        raise DownloadError(f"{spec.url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if have:
            raise _Interrupted(f"cannot reconnect: {reason}", 0) from None
        raise DownloadError(f"cannot reach {spec.url}: {reason}") from None
    with resp:
        total, start = _extent(resp, have)
        mode = "ab" if start else "wb"
        got = 0
        with open(part, mode) as out:
            done = start
            if progress:
                progress(done, total)
            try:
                while True:
                    block = resp.read(spec.chunk_bytes)
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            except _CUT as exc:
                raise _Interrupted(str(exc) or type(exc).__name__, got) from None
        if total is not None and done < total:
            raise _Interrupted(f"connection closed after {done} of {total} bytes", got)
        if spec.size is not None and total is None and done != spec.size:
            raise _Interrupted(f"got {done} bytes, expected {spec.size}", got)
    return got


def _extent(resp: http.client.HTTPResponse, have: int) -> tuple[Optional[int], int]:
    """(total size or None, offset the body starts at) from a 200 or 206 response."""
    if resp.status == 206:
        cr = resp.headers.get("Content-Range", "")
        try:
            unit, _, rest = cr.partition(" ")
            span, _, size = rest.partition("/")
            first = int(span.split("-")[0])
            total = int(size) if size.strip() != "*" else None
        except ValueError:
            raise DownloadError(f"bad Content-Range {cr!r} from the server") from None
        if unit != "bytes" or first != have:
            raise DownloadError(f"server resumed at byte {first}, asked for {have}")
        return total, have
    length = resp.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), 0


def extract(archive: Path, dest: Path) -> int:
    """Unpack a tar archive into `dest` (one wrapping folder is dropped); returns the WAV count.

    Only regular files and folders inside `dest` are written (tarfile's `data` filter).
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            prefix = _wrapping_folder([m.name for m in members])
            count = 0
            for m in members:
                name = PurePosixPath(m.name)
                if prefix is not None:
                    if name == prefix:
                        continue
                    name = name.relative_to(prefix)
                if str(name) in ("", "."):
                    continue
                m.name = str(name)
                tar.extract(m, dest, filter="data")
                count += m.isfile() and name.suffix.lower() == ".wav"
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"{archive.name}: cannot extract ({exc})") from None
    if count == 0:
        raise DownloadError(f"{archive.name} holds no WAV files: not a Speech Commands archive")
    return count


def _wrapping_folder(names: list[str]) -> Optional[PurePosixPath]:
    """The single top folder every member sits in, when it is not itself a word folder."""
    parts = [PurePosixPath(n).parts for n in names]
    parts = [p[1:] if p and p[0] == "." else p for p in parts]
    tops = {p[0] for p in parts if p}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    if any(len(p) == 2 and p[1].lower().endswith(".wav") for p in parts):
        return None  # WAVs directly under it: it is a word folder
    if not any(len(p) >= 3 for p in parts):
        return None
    return PurePosixPath(top)


def _remove_empty(*dirs: Path) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass


def remove_partial(dest: Path) -> None:
    """Forget an interrupted download in `dest` (the `.download` folder)."""
    shutil.rmtree(dest / DOWNLOAD_DIR, ignore_errors=True)
