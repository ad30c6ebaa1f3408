"""`spendgate alerts …`: alert channels and the alert history, through a running server's admin API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from spendgate.entrypoints.cli_common import DEFAULT_URL, AsJson, Token, Url, admin, console, emit, run

alerts_app = typer.Typer(help="Spend alerts: where they go (channels) and what fired.", no_args_is_help=True)
channels_app = typer.Typer(help="Alert channels of an org: webhooks and e-mail.", no_args_is_help=True)
alerts_app.add_typer(channels_app, name="channels")

_CHANNEL_COLUMNS = ["id", "org_id", "kind", "target", "enabled", "created_at"]


@channels_app.command("add")
def channels_add(
    org: str,
    webhook: Annotated[
        str | None, typer.Option(help="POST signed JSON alerts to this URL.", show_default=False)
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(help="E-mail alerts to this address (needs SPENDGATE_SMTP_HOST).", show_default=False),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Send ORG's spend alerts to a webhook or an e-mail address (one per command)."""
    if (webhook is None) == (email is None):
        console.print("[red]error:[/red] give exactly one of --webhook URL or --email ADDRESS")
        raise typer.Exit(2)
    body = (
        {"org_id": org, "kind": "webhook", "target": webhook}
        if webhook
        else {
            "org_id": org,
            "kind": "email",
            "target": email,
        }
    )
    with admin(url, token) as client:
        channel = run(lambda: client.post("/alert-channels", body))
    if as_json:
        typer.echo(json.dumps(channel, indent=2))
        return
    emit([channel], False, _CHANNEL_COLUMNS)
    if channel.get("secret"):
        console.print(
            f"signing secret (shown once, store it now): [bold]{channel['secret']}[/bold]\n"
            "Check each request's spendgate-signature header with it (HMAC-SHA256 over "
            '"<spendgate-timestamp>.<body>").',
            soft_wrap=True,
        )


@channels_app.command("list")
def channels_list(
    org: Annotated[str | None, typer.Argument(show_default=False)] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List alert channels, of one ORG or all."""
    with admin(url, token) as client:
        channels = run(lambda: client.get("/alert-channels", org_id=org))
    if as_json:
        typer.echo(json.dumps(channels, indent=2))
        return
    emit(channels, False, _CHANNEL_COLUMNS)


@channels_app.command("disable")
def channels_disable(
    channel: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False
) -> None:
    """Stop sending alerts to CHANNEL (by id)."""
    with admin(url, token) as client:
        disabled = run(lambda: client.post(f"/alert-channels/{channel}/disable"))
    if as_json:
        typer.echo(json.dumps(disabled, indent=2))
        return
    emit([disabled], False, [*_CHANNEL_COLUMNS, "disabled_at"])


@alerts_app.command("list")
def alerts_list(
    org: Annotated[str | None, typer.Argument(show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Alerts that fired, newest first, with how each delivery went."""
    with admin(url, token) as client:
        alerts = run(lambda: client.get("/alerts", org_id=org, limit=limit))
    if as_json:
        typer.echo(json.dumps(alerts, indent=2))
        return
    rows = [
        {
            "created_at": a["created_at"],
            "scope": a["scope"],
            "period": f"{a['period']} from {a['period_start']}",
            "alert": a["title"],
            "deliveries": _deliveries(a["deliveries"]),
        }
        for a in alerts
    ]
    emit(rows, False, ["created_at", "scope", "period", "alert", "deliveries"])


def _deliveries(deliveries: list[dict[str, Any]]) -> str:
    if not deliveries:
        return "log only"
    return ", ".join(
        f"{d['channel_kind']} {d['channel_target']}: {d['state']} ({d['attempt_count']})" for d in deliveries
    )
