"""`keywire-agent install-service` / `uninstall-service`, staged under a temporary root."""
from __future__ import annotations

import grp
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from keywire.agent.config import build_config, load_config_file
from keywire.agent.install import WANTED_GROUPS

from ..fixtures.paths import REPO

AGENT = REPO / ".venv" / "bin" / "keywire-agent"
# An executable any account may run: this checkout's venv can sit behind a private /root,
# which install-service rightly refuses for an unprivileged service user.
PUBLIC_EXEC = "/bin/true"


def agent_cmd() -> list[str]:
    exe = AGENT if AGENT.exists() else shutil.which("keywire-agent")
    if not exe:
        pytest.skip("keywire-agent console script not installed")
    return [str(exe)]


def run(*args: str) -> subprocess.CompletedProcess:
    if args[0] == "install-service" and "--exec" not in args:
        args = (*args, "--exec", PUBLIC_EXEC)
    return subprocess.run(agent_cmd() + list(args), capture_output=True, text=True, timeout=60)


def test_install_writes_unit_user_and_default_config(tmp_path: Path):
    res = run("install-service", "--root", str(tmp_path), "--user", "kw-no-such-user")
    assert res.returncode == 0, res.stderr
    unit = (tmp_path / "etc/systemd/system/keywire-agent.service").read_text()
    assert f"ExecStart={PUBLIC_EXEC} run --config /etc/keywire/agent.toml" in unit.splitlines()
    assert "User=kw-no-such-user" in unit.splitlines() and "Group=kw-no-such-user" in unit.splitlines()
    present = [g for g in WANTED_GROUPS if _group_exists(g)]
    groups_line = next(line for line in unit.splitlines() if "upplementaryGroups" in line)
    assert groups_line.split("=", 1)[-1].split() == present or (not present and groups_line.startswith("#"))
    sysusers = (tmp_path / "etc/sysusers.d/keywire-agent.conf").read_text()
    assert "u kw-no-such-user - " in sysusers
    # The commented default config is a valid agent config.
    cfg = build_config(load_config_file(tmp_path / "etc/keywire/agent.toml"), {})
    assert cfg.model == "/var/lib/keywire/models/active.tflite" and cfg.source == "mic"
    assert cfg.json_events is False and cfg.state_dir == "/var/lib/keywire"


def test_sysusers_entry_creates_the_user(tmp_path: Path):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed")
    assert run("install-service", "--root", str(tmp_path), "--user", "kwsvc").returncode == 0
    res = subprocess.run(["systemd-sysusers", f"--root={tmp_path}",
                          str(tmp_path / "etc/sysusers.d/keywire-agent.conf")], capture_output=True, text=True)
    if res.returncode != 0 and "ermission" in res.stderr:
        pytest.skip(f"systemd-sysusers cannot run here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    assert any(line.startswith("kwsvc:") and line.endswith(":/var/lib/keywire:/usr/sbin/nologin")
               for line in passwd.splitlines())


def test_existing_user_gets_no_sysusers_entry_and_its_own_group(tmp_path: Path):
    assert run("install-service", "--root", str(tmp_path), "--user", "root").returncode == 0
    unit = (tmp_path / "etc/systemd/system/keywire-agent.service").read_text()
    assert "Group=root" in unit.splitlines()
    assert not (tmp_path / "etc/sysusers.d/keywire-agent.conf").exists()


def test_reinstall_keeps_an_edited_config(tmp_path: Path):
    assert run("install-service", "--root", str(tmp_path)).returncode == 0
    config = tmp_path / "etc/keywire/agent.toml"
    config.write_text('model = "/srv/m.tflite"\n')
    res = run("install-service", "--root", str(tmp_path), "--config", "/etc/keywire/agent.toml")
    assert res.returncode == 0 and f"kept {config}" in res.stdout
    assert config.read_text() == 'model = "/srv/m.tflite"\n'


def test_custom_config_path_goes_into_execstart(tmp_path: Path):
    assert run("install-service", "--root", str(tmp_path), "--config", "/etc/keywire/kitchen.toml").returncode == 0
    unit = (tmp_path / "etc/systemd/system/keywire-agent.service").read_text()
    assert f"ExecStart={PUBLIC_EXEC} run --config /etc/keywire/kitchen.toml" in unit.splitlines()
    assert (tmp_path / "etc/keywire/kitchen.toml").exists()


def test_agent_under_home_keeps_home_readable(tmp_path: Path):
    # A venv under /home, made in a private mount namespace so the real /home is untouched.
    if shutil.which("unshare") is None or not Path("/home").is_dir():
        pytest.skip("needs unshare and a /home directory")
    script = ("mount -t tmpfs -o mode=0755 tmpfs /home && mkdir -p /home/pi/venv/bin && "
              "printf '#!/bin/sh\\n' > /home/pi/venv/bin/keywire-agent && chmod 755 /home/pi/venv/bin/keywire-agent && "
              'exec "$@"')
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *agent_cmd(), "install-service",
                          "--print-unit", "--user", "nobody", "--exec", "/home/pi/venv/bin/keywire-agent"],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0 and "mount" in res.stderr:
        pytest.skip(f"no private mount namespace here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    assert "ProtectHome=read-only" in res.stdout.splitlines()
    assert "ExecStart=/home/pi/venv/bin/keywire-agent run --config /etc/keywire/agent.toml" in res.stdout.splitlines()


def test_agent_the_service_user_cannot_reach_is_refused(tmp_path: Path, request):
    base = Path(tempfile.mkdtemp(prefix="kw-reach-", dir="/tmp"))  # pytest's own tmp root is private
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    private = base / "private"
    private.mkdir(mode=0o700)
    script = private / "keywire-agent"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    res = run("install-service", "--root", str(tmp_path / "root"), "--user", "nobody", "--exec", str(script))
    assert res.returncode == 8
    assert f"{private} (mode 0700)" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "root").exists()
    # The agent's interpreter is checked too, through its symlinks.
    os.symlink(script, base / "python3")
    wrapper = base / "agent"
    wrapper.write_text(f"#!{base / 'python3'}\n")
    wrapper.chmod(0o755)
    res = run("install-service", "--print-unit", "--user", "nobody", "--exec", str(wrapper))
    assert res.returncode == 8 and f"{private} (mode 0700)" in res.stderr


def test_config_under_home_is_refused(tmp_path: Path):
    res = run("install-service", "--root", str(tmp_path), "--config", "/home/pi/agent.toml")
    assert res.returncode == 8
    assert res.stderr.count("\n") == 1 and "home directory" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "etc/systemd/system/keywire-agent.service").exists()


def test_uninstall_keeps_config_unless_purged(tmp_path: Path):
    assert run("install-service", "--root", str(tmp_path), "--user", "kw-no-such-user").returncode == 0
    state = tmp_path / "var/lib/keywire/models"
    state.mkdir(parents=True)
    res = run("uninstall-service", "--root", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "etc/systemd/system/keywire-agent.service").exists()
    assert not (tmp_path / "etc/sysusers.d/keywire-agent.conf").exists()
    assert (tmp_path / "etc/keywire/agent.toml").exists() and state.exists()
    res = run("uninstall-service", "--root", str(tmp_path), "--purge")
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "etc/keywire/agent.toml").exists() and not state.parent.exists()


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_agent_under_tmp_is_refused(tmp_path: Path):
    """PrivateTmp=yes hides /tmp from the service: such an agent could never start."""
    d = Path(tempfile.mkdtemp(dir="/tmp"))
    d.chmod(0o755)
    try:
        agent = d / "keywire-agent"
        agent.write_text("#!/bin/sh\nexit 0\n")
        agent.chmod(0o755)
        res = run("install-service", "--root", str(tmp_path), "--exec", str(agent))
        assert res.returncode == 8 and "PrivateTmp=yes" in res.stderr and res.stderr.count("\n") == 1
    finally:
        shutil.rmtree(d)
