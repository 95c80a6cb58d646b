"""`keywire-agent run` options from KEYWIRE_* environment variables (as the host CLI has):
the environment fills in what the command line leaves out, the command line wins, and a bad
value is one line naming the variable."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from keywire.training.bundled import model_path, sample_path

from tests.fixtures.paths import REPO


def _agent(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("KEYWIRE_") or k == "KEYWIRE_TEST_CACHE"}
    return subprocess.run([sys.executable, "-m", "keywire.agent.cli", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**full, **env})


def test_environment_sets_options_and_the_command_line_wins() -> None:
    env = {"KEYWIRE_MODEL": str(model_path("speech12")), "KEYWIRE_SOURCE": f"file:{sample_path()}",
           "KEYWIRE_NO_REALTIME": "1"}
    r = _agent(**env)
    assert r.returncode == 0, r.stderr
    keywords = [json.loads(line)["keyword"] for line in r.stdout.splitlines()]
    flags = _agent("--model", env["KEYWIRE_MODEL"], "--source", env["KEYWIRE_SOURCE"], "--no-realtime")
    assert len(keywords) >= 8 and keywords == [json.loads(line)["keyword"] for line in flags.stdout.splitlines()]
    r = _agent(**env, KEYWIRE_THRESHOLD="255")
    assert r.returncode == 0 and r.stdout == ""           # the environment's threshold applies
    r = _agent("--threshold", "100", **env, KEYWIRE_THRESHOLD="255")
    assert r.returncode == 0 and len(r.stdout.splitlines()) >= len(keywords)  # the command line wins
    r = _agent("--quiet", **env)
    assert r.returncode == 0 and r.stdout == ""


def test_bad_environment_value_is_one_line() -> None:
    r = _agent(KEYWIRE_THRESHOLD="loud", KEYWIRE_SOURCE="silence:1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "KEYWIRE_THRESHOLD" in r.stderr, r.stderr
    r = _agent(KEYWIRE_LOG_LEVEL="chatty", KEYWIRE_SOURCE="silence:1")
    assert r.returncode == 2 and "KEYWIRE_LOG_LEVEL" in r.stderr and "choose from" in r.stderr


def test_help_names_the_variables() -> None:
    r = subprocess.run([sys.executable, "-m", "keywire.agent.cli", "run", "--help"], capture_output=True, text=True,
                       timeout=60, cwd=REPO)
    text = " ".join(r.stdout.split())
    for name in ("KEYWIRE_SOURCE", "KEYWIRE_MQTT", "KEYWIRE_HA_DISCOVERY", "KEYWIRE_MAX_EVENT_AGE"):
        assert f"[env {name}]" in text, name
