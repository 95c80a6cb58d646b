"""The README documents every command of both CLIs (a new command must be written up there)."""
from __future__ import annotations

import re

import typer

from keywire.agent.cli import build_parser
from keywire.host.cli import app

from tests.fixtures.paths import REPO


def _typer_commands(group, prefix: tuple[str, ...] = ()) -> list[str]:
    subs = getattr(group, "commands", None)
    if not subs:
        return [" ".join(prefix)]
    out = [" ".join(prefix)] if prefix and getattr(group, "invoke_without_command", False) else []
    for name, sub in subs.items():
        out += _typer_commands(sub, prefix + (name,))
    return out


def _mentioned(readme: str, program: str, command: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(program)} {re.escape(command)}(?![\w-])", readme) is not None


def test_every_keywire_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    commands = _typer_commands(typer.main.get_command(app))
    assert {"evaluate", "classify", "profile", "dataset voices", "fleet command", "board-push"} <= set(commands)
    missing = [c for c in commands if not _mentioned(readme, "keywire", c)]
    assert not missing, f"README does not show: {', '.join('keywire ' + c for c in missing)}"


def test_every_agent_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "run" in a.choices)
    missing = [c for c in sub.choices if not _mentioned(readme, "keywire-agent", c)]
    assert not missing, f"README does not show: {', '.join('keywire-agent ' + c for c in missing)}"


def test_readme_has_the_home_assistant_steps() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Home Assistant", 1)[1].split("\n## ", 1)[0]
    for step in ("scripts/demo.sh", "--ha-discovery", "event.keywire_home_kitchen_keyword", "triggers:",
                 "--max-event-age"):
        assert step in section, step
