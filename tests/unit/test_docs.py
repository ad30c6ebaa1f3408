"""The docs show the CLI's real --help output."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_help_output() -> None:
    module = runpy.run_path(str(ROOT / "scripts" / "cli_reference.py"))
    assert (ROOT / "docs" / "cli.md").read_text() == module["render"](), (
        "docs/cli.md is out of date: run python scripts/cli_reference.py"
    )
