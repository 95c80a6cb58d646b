"""The shipped unit file: identical to the installer's rendering, clean under
`systemd-analyze verify`, and rated 1.5 or lower by `systemd-analyze security`."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from keywire.agent.install import DEFAULT_EXEC, InstallRequest, install_service, render_unit

from ..fixtures.paths import REPO

UNIT = REPO / "systemd" / "keywire-agent.service"
AGENT = REPO / ".venv" / "bin" / "keywire-agent"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (apt install systemd)")


def _agent_exec() -> Path:
    exe = AGENT if AGENT.exists() else Path(shutil.which("keywire-agent") or "")
    if not exe.is_file():
        pytest.skip("keywire-agent console script not installed")
    return exe


def _verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def exposure(unit: Path) -> float:
    """The overall exposure score printed by `systemd-analyze security --offline=true`."""
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out.stdout)
    assert m, f"no overall score in output:\n{out.stdout}\n{out.stderr}"
    return float(m.group(1))


def test_shipped_unit_is_the_installer_rendering():
    assert UNIT.read_text() == render_unit(), "regenerate systemd/keywire-agent.service from render_unit()"


def test_unit_has_the_service_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StateDirectory=keywire", "ConfigurationDirectory=keywire", "User=keywire",
                 f"ExecStart={DEFAULT_EXEC} run --config /etc/keywire/agent.toml"):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    assert re.search(r"^StartLimitBurst=\d+$", text, re.M)


@needs_analyze
def test_shipped_unit_verifies_clean(tmp_path: Path):
    # verify checks that ExecStart exists: point it at this checkout's console script.
    unit = tmp_path / "keywire-agent.service"
    unit.write_text(UNIT.read_text().replace(DEFAULT_EXEC, str(_agent_exec())))
    res = _verify(unit)
    assert res.stderr == "" and res.returncode == 0, res.stderr


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path):
    unit = tmp_path / "keywire-agent.service"
    unit.write_text(UNIT.read_text().replace(DEFAULT_EXEC, str(_agent_exec()))
                    .replace("Type=notify", "Type=notfy"))
    assert "Failed to parse service type" in _verify(unit).stderr


@needs_analyze
def test_security_exposure_is_ok():
    assert exposure(UNIT) <= 1.5


@needs_analyze
def test_bare_notify_unit_scores_unsafe(tmp_path: Path):
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nType=notify\nExecStart=/bin/true\n")
    assert exposure(bare) > 9.0


@needs_analyze
def test_installed_unit_verifies_clean(tmp_path: Path):
    # As root: this checkout's Python may sit behind a private /root that other users cannot reach.
    if str(_agent_exec()).startswith(("/tmp/", "/var/tmp/")):
        pytest.skip("this checkout lies under /tmp, which the unit's PrivateTmp=yes hides: not installable")
    install_service(InstallRequest(root=str(tmp_path), exec_path=str(_agent_exec()), user="root"))
    res = _verify(tmp_path / "etc/systemd/system/keywire-agent.service")
    assert res.stderr == "" and res.returncode == 0, res.stderr


@needs_analyze
def test_installed_unit_for_a_new_user_scores_ok(tmp_path: Path):
    install_service(InstallRequest(root=str(tmp_path), exec_path="/bin/true", user="kw-no-such-user"))
    unit = tmp_path / "etc/systemd/system/keywire-agent.service"
    assert _verify(unit).stderr == ""
    assert exposure(unit) <= 1.5
