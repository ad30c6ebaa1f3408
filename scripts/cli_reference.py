"""Write docs/cli.md from the real `--help` output of every command (`--check`: fail if it differs)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.main import get_command
from typer.testing import CliRunner

from spendgate.entrypoints.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def command_paths(group: typer.Typer) -> list[list[str]]:
    root = get_command(group)
    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def render() -> str:
    runner = CliRunner()
    parts = [
        "# CLI reference\n",
        "Generated from `--help` by `python scripts/cli_reference.py`; a test fails when it drifts.\n",
    ]
    for path in command_paths(app):
        result = runner.invoke(app, [*path, "--help"], prog_name="spendgate", env=ENV)
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        parts.append(f"## spendgate {' '.join(path)}".rstrip() + "\n\n```\n" + text + "\n```\n")
    return "\n".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/cli_reference.py")
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
