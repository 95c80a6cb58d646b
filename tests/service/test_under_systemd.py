"""The installed unit under a real systemd: PID 1 of private PID/mount/network namespaces.

Runs only where that cannot disturb the host: as root, on a machine whose own PID 1 is not
systemd (a container or VM sandbox), with overlayfs for private copies of /etc, /var and
/root. The unit is the one `install-service` writes, with all its sandboxing, plus a drop-in
that shortens WatchdogSec so the watchdog test takes seconds. What this proves that the
notify-socket tests cannot: the hardened sandbox lets the agent run, systemd accepts its
READY/WATCHDOG/RELOADING/STOPPING, kills and restarts it when the loop stops, and journald
stores detections with their fields under the service user.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


from ..fixtures.speech import stream_of_words, write_wav
from .agent_process import agent_executable

SYSTEMD = Path("/lib/systemd/systemd")

PID1 = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs "$W/ovl"
for d in etc var root; do
  mkdir -p "$W/ovl/$d.u" "$W/ovl/$d.w"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/ovl/$d.u,workdir=$W/ovl/$d.w" "/$d"
done
chmod 711 /root   # a Python under /root (pyenv) must be reachable for the service user
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs tmpfs /run
cp "$W/kwtest.target" /etc/systemd/system/
exec /lib/systemd/systemd --system --unit=kwtest.target --log-target=null
"""

TARGET = """[Unit]
Description=keywire test boot
DefaultDependencies=no
Wants=systemd-journald.service
"""

DROPIN = """[Unit]
DefaultDependencies=no
[Service]
WatchdogSec=3s
TimeoutStopSec=3s
RestartSec=1s
"""


def _usable() -> str:
    if os.geteuid() != 0:
        return "needs root"
    if Path("/run/systemd/system").exists():
        return "the host runs systemd itself; a second one could disturb its cgroups"
    if str(Path(sys.executable).resolve()).startswith(("/tmp/", "/var/tmp/")) or \
            str(Path(sys.prefix)).startswith(("/tmp/", "/var/tmp/")):
        return "the checkout's venv is under /tmp, which the unit's PrivateTmp=yes hides"
    if not SYSTEMD.exists() or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "needs systemd, unshare and nsenter installed"
    return ""


pytestmark = [pytest.mark.skipif(bool(_usable()), reason=_usable() or "ok"), pytest.mark.slow]


class Booted:
    """systemd as PID 1 in new namespaces; `sh()` runs commands inside them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "--mount-proc",
             "sh", "-c", PID1], env={**os.environ, "W": str(work)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.pid = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.pid:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids and Path(f"/proc/{pids[0]}/comm").read_text().strip() == "systemd":
                self.pid = int(pids[0])
            elif self.proc.poll() is not None:
                break
            time.sleep(0.1)
        while self.pid and time.monotonic() < deadline:
            if self.sh("systemctl is-active systemd-journald").stdout.strip() == "active":
                return
            time.sleep(0.2)
        out = self.proc.stdout.read().decode() if self.proc.poll() is not None and self.proc.stdout else ""
        self.close()
        pytest.skip(f"systemd did not boot in a namespace here: {out.strip()[-300:]}")

    def sh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", "-n", "sh", "-c", command],
                              capture_output=True, text=True, timeout=timeout)

    def show(self, *props: str) -> dict:
        out = self.sh("systemctl show keywire-agent " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_show(self, pred, timeout: float, *props: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.show(*props)
            if pred(state) or time.monotonic() > deadline:
                return state
            time.sleep(0.2)

    def close(self) -> None:
        if self.pid:
            self.sh("systemctl poweroff --no-block", timeout=10)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # unshare, which we started
            self.proc.wait(5)
        _remove_empty_cgroups()


def _remove_empty_cgroups() -> None:
    """The namespaced systemd made init.scope/system.slice in the shared cgroup trees: remove them."""
    for top in Path("/sys/fs/cgroup").glob("*"):
        for name in ("init.scope", "system.slice"):
            d = top / name
            if not d.is_dir():
                continue
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [d]:
                try:
                    sub.rmdir()
                except OSError:
                    pass


INSTALL = r"""
set -e
"$AGENT" install-service
mkdir -p /etc/systemd/system/keywire-agent.service.d
cp "$W/test.conf" /etc/systemd/system/keywire-agent.service.d/
systemctl daemon-reload
cp "$W/agent.toml" /etc/keywire/agent.toml
install -d /var/lib/keywire/models
cp "$W/model.tflite" /var/lib/keywire/models/active.tflite
cp "$W/speech.wav" /var/lib/keywire/speech.wav
"""


@pytest.fixture
def booted(loudness_model):
    """systemd booted, and `keywire-agent install-service` run inside against it (live branch:
    systemd-sysusers creates the user, systemctl daemon-reload), plus the test drop-in."""
    work = Path(tempfile.mkdtemp(prefix="kw-systemd-", dir="/tmp"))
    (work / "ovl").mkdir()
    (work / "kwtest.target").write_text(TARGET)
    (work / "test.conf").write_text(DROPIN)
    (work / "agent.toml").write_text('model = "/var/lib/keywire/models/active.tflite"\nsource = "silence"\n'
                                     'state_dir = "/var/lib/keywire"\njson_events = false\n')
    shutil.copy(loudness_model, work / "model.tflite")
    samples, _ = stream_of_words(["yes", "seven", "hello"], voices=["en-us"], gap_s=0.8)
    write_wav(work / "speech.wav", samples)
    b = Booted(work)
    try:
        res = b.sh(f"W={work} AGENT={agent_executable()} sh -c '{INSTALL}'")
        assert res.returncode == 0, res.stderr
        assert "ran systemd-sysusers /etc/sysusers.d/keywire-agent.conf" in res.stdout, res.stdout
        assert "ran systemctl daemon-reload" in res.stdout and "ProtectHome" in b.sh("systemctl cat keywire-agent").stdout
        b.uid = b.sh("id -u keywire").stdout.strip()
        assert b.uid.isdigit() and b.uid != "0"
        yield b
    finally:
        b.close()
        shutil.rmtree(work, ignore_errors=True)


def test_agent_runs_sandboxed_under_systemd(booted):
    b = booted
    res = b.sh("systemctl start keywire-agent")  # Type=notify: returns after READY=1
    assert res.returncode == 0, res.stderr + b.sh("journalctl -u keywire-agent --no-pager -n 20").stdout
    state = b.show("ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    assert state["ActiveState"] == "active" and "model loudness v1 | source silence" in state["StatusText"]
    uid = b.sh(f"awk '/^Uid:/ {{print $2}}' /proc/{state['MainPID']}/status").stdout.strip()
    assert uid == b.uid
    security = b.sh("systemd-analyze security keywire-agent --no-pager").stdout.splitlines()[-1]
    assert float(security.split(": ")[1].split()[0]) <= 1.5, security

    # WATCHDOG=1 keeps it alive past several watchdog periods.
    time.sleep(7)
    assert b.show("ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}

    # systemctl reload: RELOADING=1 ... READY=1, same process.
    b.sh("printf '[detection]\\nthreshold = 90\\n' >> /etc/keywire/agent.toml")
    assert b.sh("systemctl reload keywire-agent").returncode == 0
    deadline = time.monotonic() + 10
    while "reloaded configuration" not in (log := b.sh("journalctl -u keywire-agent --no-pager -o cat").stdout):
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    after = b.wait_show(lambda s: s["ActiveState"] == "active", 10, "ActiveState", "MainPID")
    assert after["MainPID"] == state["MainPID"]

    # A frozen processing loop stops the pings: systemd's watchdog kills and restarts the agent.
    b.sh(f"kill -STOP {state['MainPID']}")
    restarted = b.wait_show(lambda s: s["NRestarts"] == "1" and s["ActiveState"] == "active", 20,
                            "NRestarts", "ActiveState", "MainPID")
    assert restarted["NRestarts"] == "1" and restarted["MainPID"] != state["MainPID"]

    # systemctl stop: STOPPING=1 and a clean exit.
    assert b.sh("systemctl stop keywire-agent").returncode == 0
    stopped = b.show("ActiveState", "Result", "ExecMainStatus")
    assert stopped == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}


def test_detections_land_in_the_journal_under_the_service_user(booted):
    b = booted
    b.sh("sed -i 's#^source = .*#source = \"file:/var/lib/keywire/speech.wav\"#' /etc/keywire/agent.toml && "
         "printf '[detection]\\nthreshold = 100\\n' >> /etc/keywire/agent.toml")
    assert b.sh("systemctl start keywire-agent").returncode == 0
    done = b.wait_show(lambda s: s["ActiveState"] == "inactive", 30, "ActiveState", "Result")
    assert done["Result"] == "success"  # the file ended: a clean exit, no restart
    out = b.sh("journalctl --no-pager KEYWIRE_EVENT=detection -o json").stdout
    entries = [json.loads(line) for line in out.splitlines()]
    assert len(entries) >= 3
    for e in entries:
        assert e["_SYSTEMD_UNIT"] == "keywire-agent.service" and e["_UID"] == b.uid
        assert e["KEYWORD"] == "speech" and int(e["SCORE"]) > 100 and e["MODEL"] == "loudness"
        assert len(e["EVENT_ID"]) == 32


def test_uninstall_service_stops_and_removes_it(booted):
    b = booted
    assert b.sh("systemctl enable --now keywire-agent").returncode == 0
    assert b.show("ActiveState")["ActiveState"] == "active"
    res = b.sh(f"{agent_executable()} uninstall-service --purge")
    assert res.returncode == 0, res.stderr
    assert "ran systemctl disable --now keywire-agent.service" in res.stdout
    assert b.show("ActiveState", "LoadState") == {"ActiveState": "inactive", "LoadState": "not-found"}
    assert b.sh("test -e /etc/keywire/agent.toml || test -e /var/lib/keywire").returncode != 0
