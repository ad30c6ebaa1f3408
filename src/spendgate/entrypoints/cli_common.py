"""What every admin command shares: the server and token options, the client, errors and tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from spendgate.entrypoints.admin_client import AdminClient, AdminError

T = TypeVar("T")

console = Console()

DEFAULT_URL = "http://127.0.0.1:8080"
Url = Annotated[str, typer.Option("--url", envvar="SPENDGATE_URL", help="The spendgate server.")]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SPENDGATE_ADMIN_TOKEN",
        show_default=False,
        help="Admin token (default: $SPENDGATE_ADMIN_TOKEN).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def admin(url: str, token: str | None) -> AdminClient:
    return AdminClient(url, token)


def run(action: Callable[[], T]) -> T:
    """Call the admin API; on an error, print it and exit 1."""
    try:
        return action()
    except AdminError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def emit(data: Any, as_json: bool, columns: list[str], title: str | None = None) -> None:
    """JSON for scripts, or a table of `columns` for people."""
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(*columns, title=title)
    for row in data if isinstance(data, list) else [data]:
        table.add_row(*(cell(row.get(c)) for c in columns))
    console.print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
