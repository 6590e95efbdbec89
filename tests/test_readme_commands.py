"""Every `bertx` command shown in README.md and docs/ names a real subcommand and only options it accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(page: Path) -> list[str]:
    found, in_bash = [], False
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_bash = line.strip() in ("```bash", "```sh") if not in_bash else False
        elif in_bash and line.startswith("bertx "):
            command = line
            while command.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i].strip()
            found.append(re.sub(r"\s+#.*$", "", command))
        i += 1
    return found


CASES = [(page.name, command) for page in PAGES for command in commands(page)]


def test_the_readme_shows_commands():
    assert sum(1 for page, _ in CASES if page == "README.md") >= 15


@pytest.mark.parametrize("page,command", CASES)
def test_each_command_parses(page, command):
    import typer.main

    from bertx.cli import app

    group = typer.main.get_command(app)
    words = shlex.split(command)[1:]
    target = group
    while hasattr(target, "commands") and words and words[0] in target.commands:
        target = target.commands[words.pop(0)]
    assert not hasattr(target, "commands"), f"{page}: {command!r} names no subcommand"
    accepted = {opt for param in target.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in accepted, f"{page}: {command!r}: {word} is not an option of that command"
