"""The `spendgate` command: `serve`, `simulate-upstream`, and admin commands that talk to a running
server's admin API (--url or SPENDGATE_URL; the token from SPENDGATE_ADMIN_TOKEN)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgate.entrypoints.cli_alerts import alerts_app
from spendgate.entrypoints.cli_common import DEFAULT_URL, AsJson, Token, Url, admin, console, emit, run

app = typer.Typer(
    help="spendgate: a metering, spend-limiting billing gateway for OpenAI-compatible APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
orgs_app = typer.Typer(help="Orgs: the billing accounts.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects inside an org.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (sg-…) for a project.", no_args_is_help=True)
clock_app = typer.Typer(help="The test clock (server started with --test-clock).", no_args_is_help=True)
limits_app = typer.Typer(help="Spend limits on an org, project or key.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(clock_app, name="clock")
app.add_typer(limits_app, name="limits")
app.add_typer(alerts_app, name="alerts")

DEFAULT_DB = "sqlite:///spendgate.db"
DEFAULT_MAX_BODY = 32 * 1024 * 1024


def main() -> None:
    app()


# serving


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SPENDGATE_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="SPENDGATE_PORT", help="Port for gateway, admin API, pages.")
    ] = 8080,
    db: Annotated[
        str, typer.Option(envvar="SPENDGATE_DB", help="sqlite:///FILE or postgresql://…")
    ] = DEFAULT_DB,
    upstream: Annotated[
        str | None,
        typer.Option(
            envvar="SPENDGATE_UPSTREAM_URL",
            show_default=False,
            help="Default upstream base URL, e.g. https://api.openai.com/v1.",
        ),
    ] = None,
    simulate: Annotated[
        bool, typer.Option(envvar="SPENDGATE_SIMULATE", help="Use the built-in simulated upstream.")
    ] = False,
    test_clock: Annotated[
        bool, typer.Option(envvar="SPENDGATE_TEST_CLOCK", help="Let the admin API set and advance time.")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(envvar="SPENDGATE_DEMO", help="Seed a demo org and project; print a fresh demo key."),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="SPENDGATE_CONFIG_FILE", help="TOML file naming upstreams and prices."),
    ] = None,
    price_file: Annotated[
        Path | None, typer.Option(envvar="SPENDGATE_PRICE_FILE", help="TOML file of operator prices.")
    ] = None,
    max_body: Annotated[
        int, typer.Option(envvar="SPENDGATE_MAX_BODY_BYTES", help="Largest request body accepted, in bytes.")
    ] = DEFAULT_MAX_BODY,
) -> None:
    """Run the gateway (/v1), the admin API (/admin/v1) and the pages on one port.

    With no upstream URL and no key (SPENDGATE_UPSTREAM_API_KEY or OPENAI_API_KEY), the built-in
    simulated upstream answers, so spendgate works offline at once. The admin token comes from
    SPENDGATE_ADMIN_TOKEN, or is generated and printed on a database's first start.
    """
    import uvicorn

    from spendgate.config import Settings
    from spendgate.entrypoints.asgi import SpendgateApp
    from spendgate.entrypoints.banner import print_banner

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "db": db,
        "upstream_url": upstream,
        "simulate": simulate,
        "test_clock": test_clock,
        "demo": demo,
        "config_file": config,
        "price_file": price_file,
        "max_body_bytes": max_body,
    }
    settings = Settings(**overrides)
    spendgate_app = SpendgateApp(
        settings, on_started=lambda c: print_banner(Console(soft_wrap=True, highlight=False), c)
    )
    uvicorn.run(
        spendgate_app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


@app.command("simulate-upstream")
def simulate_upstream(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 18000,
    delay_ms: Annotated[int, typer.Option(help="Latency added to every response, in ms.")] = 0,
    chunk_delay_ms: Annotated[int, typer.Option(help="Pause between streamed chunks, in ms.")] = 0,
) -> None:
    """Run the simulated OpenAI-compatible upstream on its own (base URL http://HOST:PORT/v1)."""
    from spendgate.simulator.app import SimulatorConfig, run_simulator

    run_simulator(host, port, SimulatorConfig(delay_ms=delay_ms, chunk_delay_ms=chunk_delay_ms))


# admin commands


@orgs_app.command("create")
def orgs_create(
    name: str,
    timezone: Annotated[str, typer.Option(help="IANA time zone for periods.")] = "UTC",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create an org (a billing account)."""
    with admin(url, token) as client:
        org = run(lambda: client.post("/orgs", {"name": name, "timezone": timezone}))
    emit(org, as_json, ["id", "name", "timezone", "created_at"])


@orgs_app.command("list")
def orgs_list(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """List orgs."""
    with admin(url, token) as client:
        emit(run(lambda: client.get("/orgs")), as_json, ["id", "name", "timezone", "created_at"])


@projects_app.command("create")
def projects_create(
    org: str, name: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False
) -> None:
    """Create a project in ORG."""
    with admin(url, token) as client:
        project = run(lambda: client.post("/projects", {"org_id": org, "name": name}))
    emit(project, as_json, ["id", "org_id", "name", "created_at"])


@projects_app.command("list")
def projects_list(
    org: Annotated[str | None, typer.Argument()] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List projects, of one ORG or all."""
    with admin(url, token) as client:
        emit(
            run(lambda: client.get("/projects", org_id=org)), as_json, ["id", "org_id", "name", "created_at"]
        )


@keys_app.command("create")
def keys_create(
    project: str,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated allowed models (default: all priced).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create an API key for PROJECT; its secret is printed once."""
    body: dict[str, Any] = {"project_id": project, "name": name}
    if models is not None:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    with admin(url, token) as client:
        key = run(lambda: client.post("/keys", body))
    if as_json:
        typer.echo(json.dumps(key, indent=2))
        return
    emit(key, False, ["id", "project_id", "name", "models"])
    console.print(f"secret (shown once, store it now): [bold]{key['secret']}[/bold]", soft_wrap=True)


@keys_app.command("list")
def keys_list(
    project: Annotated[str | None, typer.Argument()] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List keys, of one PROJECT or all (secrets are never shown again)."""
    with admin(url, token) as client:
        emit(
            run(lambda: client.get("/keys", project_id=project)),
            as_json,
            ["id", "project_id", "name", "prefix", "models", "revoked_at"],
        )


@keys_app.command("revoke")
def keys_revoke(key: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """Revoke KEY (by id); calls with it are refused at once."""
    with admin(url, token) as client:
        emit(run(lambda: client.post(f"/keys/{key}/revoke")), as_json, ["id", "name", "revoked_at"])


class By(StrEnum):
    day = "day"
    model = "model"
    key = "key"
    project = "project"


@app.command()
def usage(
    scope: Annotated[str | None, typer.Argument(help="org:ID, project:ID or key:ID (default: all).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Start, ISO 8601 with offset (default: month start).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End, ISO 8601 with offset (exclusive).")] = None,
    by: Annotated[By | None, typer.Option(help="Split into rows.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Requests, tokens and cost: by default the current calendar month in the org's time zone."""
    with admin(url, token) as client:
        report = run(
            lambda: client.get("/usage", scope=scope, since=since, until=until, by=by.value if by else None)
        )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    title = f"{report['scope']}  {report['since']} → {report['until']} ({report['timezone']})"
    if report.get("limits"):
        _print_limits(report["limits"])
    table = Table("", "requests", "input", "cached", "output", "reasoning", "cost (USD)", title=title)
    for row in [*report["rows"], {"group": "total", **report["totals"]}]:
        table.add_row(row["group"], *(str(row[c]) for c in _USAGE_COLUMNS))
    console.print(table)


_USAGE_COLUMNS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
)


class PeriodName(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    total = "total"


@limits_app.command("set")
def limits_set(
    scope: Annotated[str, typer.Argument(help="org:ID, project:ID or key:ID.")],
    soft: Annotated[str | None, typer.Option(help="Alert when spend passes this, in USD.")] = None,
    hard: Annotated[str | None, typer.Option(help="Refuse calls that could spend past this, in USD.")] = None,
    period: Annotated[
        PeriodName, typer.Option(help="The period the limit covers (org's time zone).")
    ] = PeriodName.month,
    alert_at: Annotated[
        str, typer.Option(help="Shares of the hard limit that alert, in percent.")
    ] = "50,80,100",
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Set (or replace) SCOPE's soft and/or hard limit for a period."""
    try:
        shares = [int(part) for part in alert_at.split(",") if part.strip()]
    except ValueError:
        console.print(f"[red]error:[/red] --alert-at takes percentages like 50,80,100, not {alert_at!r}")
        raise typer.Exit(2) from None
    body = {
        "scope": scope,
        "period": period.value,
        "soft_usd": soft,
        "hard_usd": hard,
        "alert_shares": shares,
    }
    with admin(url, token) as client:
        limit = run(lambda: client.post("/limits", body))
    if as_json:
        typer.echo(json.dumps(limit, indent=2))
        return
    _print_limits([limit])


@limits_app.command("list")
def limits_list(
    scope: Annotated[str | None, typer.Argument(help="org:ID, project:ID or key:ID (default: all).")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Limits with what is spent, held and left in their current periods, and the forecast."""
    with admin(url, token) as client:
        limits = run(lambda: client.get("/limits", scope=scope))
    if as_json:
        typer.echo(json.dumps(limits, indent=2))
        return
    _print_limits(limits)


@limits_app.command("remove")
def limits_remove(
    scope: Annotated[str, typer.Argument(help="org:ID, project:ID or key:ID.")],
    period: Annotated[PeriodName, typer.Option(help="Which of the scope's limits.")] = PeriodName.month,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Remove SCOPE's limit for a period."""
    with admin(url, token) as client:
        run(lambda: client.delete("/limits", scope=scope, period=period.value))
    if as_json:
        typer.echo(json.dumps({"removed": {"scope": scope, "period": period.value}}))
    else:
        console.print(f"removed the {period.value} limit on {scope}")


def _print_limits(limits: list[dict[str, Any]]) -> None:
    table = Table(
        "scope",
        "period",
        "soft",
        "hard",
        "spent",
        "held",
        "left",
        "per hour",
        "hard limit at",
        "resets",
        title="limits (USD)",
    )
    for limit in limits:
        table.add_row(
            limit["scope"],
            limit["period"],
            limit["soft_usd"] or "-",
            limit["hard_usd"] or "-",
            limit["spent_usd"],
            limit["reserved_usd"],
            limit["remaining_usd"] or "-",
            limit["burn_rate_usd_per_hour"],
            limit["forecast_hard_limit_at"] or "-",
            limit["period_end"] or "never",
        )
    console.print(table)


@clock_app.command("set")
def clock_set(when: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
    """Move the test clock to WHEN (ISO 8601 with offset)."""
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        console.print(f"[red]error:[/red] {when!r} is not an ISO 8601 time")
        raise typer.Exit(2) from None
    with admin(url, token) as client:
        emit(run(lambda: client.post("/clock", {"set": moment.isoformat()})), as_json, ["now", "test_clock"])


@clock_app.command("advance")
def clock_advance(
    duration: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False
) -> None:
    """Advance the test clock by DURATION: 90s, 15m, 1h, 3d."""
    try:
        seconds = int(parse_duration(duration).total_seconds())
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    with admin(url, token) as client:
        emit(run(lambda: client.post("/clock", {"advance_seconds": seconds})), as_json, ["now", "test_clock"])


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h, 3d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
