"""`keywire dataset download`: a real transfer from a loopback HTTP server, resumed after a cut
connection, verified by sha256, extracted into Speech Commands layout, idempotent."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from keywire.training.download import (ChecksumError, DownloadError, DownloadSpec, MARKER, download,
                                       speech_commands_archive)
from tests.fixtures.speech import read_wav, write_wav

from .server import ArchiveServer

WORDS = {"yes": ["en-us", "en-gb"], "no": ["en-us", "en-gb-scotland"]}


def _build_archive(speak, root: Path, wrap: str = "") -> bytes:
    """A small Speech Commands-style tar.gz from espeak-ng clips, list files and a noise file."""
    files: dict[str, Path] = {}
    for word, voices in WORDS.items():
        for i, voice in enumerate(voices):
            files[f"{word}/spk{i}a_nohash_0.wav"] = speak(word, voice=voice)
    rng = np.random.default_rng(0)
    noise = write_wav(root / "noise.wav", (rng.standard_normal(16000 * 3) * 800).astype(np.int16))
    files["_background_noise_/white.wav"] = noise
    (root / "val.txt").write_text("yes/spk1a_nohash_0.wav\n")
    files["validation_list.txt"] = root / "val.txt"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, path in files.items():
            tar.add(path, arcname=f"{wrap}{name}" if wrap else f"./{name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def archive(speak, tmp_path_factory) -> bytes:
    return _build_archive(speak, tmp_path_factory.mktemp("archive"))


@pytest.fixture()
def server(archive):
    srv = ArchiveServer(archive).start()
    yield srv
    srv.stop()


def _spec(server: ArchiveServer, dest: Path, **kw) -> DownloadSpec:
    sha = kw.pop("sha256", hashlib.sha256(server.data).hexdigest())
    return DownloadSpec(url=server.url, sha256=sha, dest=dest, retry_wait_s=0.0, timeout_s=10, **kw)


def _keywire(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keywire.host.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_download_extracts_speech_commands_layout_and_is_idempotent(server, tmp_path):
    dest = tmp_path / "sc"
    seen = []
    result = download(_spec(server, dest), lambda done, total: seen.append((done, total)))
    assert result.status == "downloaded" and result.files == 5
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["_background_noise_", "no", "yes"]
    assert (dest / "validation_list.txt").read_text().strip() == "yes/spk1a_nohash_0.wav"
    x, rate = read_wav(dest / "yes" / "spk0a_nohash_0.wav")
    assert rate == 16000 and np.abs(x).max() > 1000
    assert seen[-1] == (len(server.data), len(server.data))
    assert json.loads((dest / MARKER).read_text())["sha256"] == hashlib.sha256(server.data).hexdigest()
    assert not (dest / ".download").exists()  # archive removed after extraction
    requests = len(server.ranges)
    again = download(_spec(server, dest))
    assert again.status == "present" and len(server.ranges) == requests  # nothing fetched


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    dest = tmp_path / "sc"
    server.cut_next, server.cut_at = 1, len(server.data) // 2
    with pytest.raises(DownloadError, match="interrupted"):
        download(_spec(server, dest, retries=0))
    part = dest / ".download" / (server.name + ".part")
    assert part.stat().st_size == len(server.data) // 2
    result = download(_spec(server, dest, retries=0))
    assert server.ranges == [None, f"bytes={len(server.data) // 2}-"]
    assert result.resumed_from == len(server.data) // 2
    assert result.fetched_bytes == len(server.data) - len(server.data) // 2
    assert (dest / "no" / "spk1a_nohash_0.wav").is_file() and not part.exists()


def test_cut_connection_is_retried_within_one_run(server, tmp_path):
    server.cut_next, server.cut_at = 2, 1000
    result = download(_spec(server, tmp_path / "sc", retries=3))
    assert result.attempts == 3
    assert server.ranges == [None, "bytes=1000-", "bytes=2000-"]
    assert result.files == 5


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    dest = tmp_path / "sc"
    server.cut_next, server.cut_at, server.ignore_range = 1, 3000, True
    result = download(_spec(server, dest, retries=1))
    assert result.files == 5 and server.ranges == [None, "bytes=3000-"]


def test_checksum_mismatch_is_an_error_and_drops_the_file(server, tmp_path):
    dest = tmp_path / "sc"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download(_spec(server, dest, sha256="0" * 64))
    assert not list((dest / ".download").iterdir())
    assert not (dest / "yes").exists()


def test_cli_download_resume_and_checksum_errors(server, tmp_path):
    dest = tmp_path / "sc"
    sha = hashlib.sha256(server.data).hexdigest()
    server.cut_next, server.cut_at = 1, 5000
    r = _keywire("dataset", "download", "speech-commands", str(dest), "--url", server.url, "--sha256", sha,
                 "--retries", "0", "-q")
    assert r.returncode == 6 and r.stderr.count("\n") == 1 and "run the command again to resume" in r.stderr
    r = _keywire("dataset", "download", "speech-commands", str(dest), "--url", server.url, "--sha256", sha, "-q")
    assert r.returncode == 0, r.stderr
    assert "5 WAV files extracted" in r.stderr and "resumed at 5000 bytes" in r.stderr
    r = _keywire("dataset", "download", "speech-commands", str(dest), "--url", server.url, "--sha256", sha)
    assert r.returncode == 0 and "already downloaded" in r.stderr
    r = _keywire("dataset", "download", "speech-commands", str(tmp_path / "bad"), "--url", server.url,
                 "--sha256", "f" * 64, "-q")
    assert r.returncode == 6 and r.stderr.startswith("keywire: error: sha256 mismatch")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_bad_requests_name_the_problem(server, tmp_path):
    server.status = 404
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(_spec(server, tmp_path / "a"))
    r = _keywire("dataset", "download", "speech-commands", str(tmp_path / "b"), "--url", server.url, "-q")
    assert r.returncode == 2 and "--url needs --sha256" in r.stderr
    r = _keywire("dataset", "download", "speech-commands", str(tmp_path / "b"), "--version", "7")
    assert r.returncode == 2 and "version '7'" in r.stderr
    r = _keywire("dataset", "download", "speech-commands", str(tmp_path / "c"), "--url", server.url,
                 "--sha256", "xyz")
    assert r.returncode == 2 and "64 hex digits" in r.stderr


def test_wrapping_folder_is_dropped(speak, tmp_path):
    data = _build_archive(speak, tmp_path, wrap="speech_commands_v0.02/")
    srv = ArchiveServer(data).start()
    try:
        download(_spec(srv, tmp_path / "sc"))
    finally:
        srv.stop()
    assert (tmp_path / "sc" / "yes" / "spk0a_nohash_0.wav").is_file()


def test_official_archives_are_known():
    v2 = speech_commands_archive("0.02")
    assert v2.url.endswith("speech_commands_v0.02.tar.gz") and v2.size == 2428923189
    assert v2.sha256 == "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
    assert speech_commands_archive("1").url.endswith("speech_commands_v0.01.tar.gz")
