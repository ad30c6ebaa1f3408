"""Starting spendgate as a user does: `--simulate`/`--demo`, a config file that routes models to
upstreams, an operator price file, the CLI against the admin API, /healthz and /metrics, and a
process killed in the middle of a burst."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

import httpx
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import create_engine, text

from spendgate.domain.money import usd_to_nanos
from tests.e2e.conftest import SPENDGATE, Gateway, Sdk, free_port, start_gateway, stop, wait_until_up

CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


def test_demo_on_a_fresh_database_works_with_the_printed_key(tmp_path: Path, sdk: Sdk) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "SPENDGATE_ADMIN_TOKEN")}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*SPENDGATE, "serve", "--demo", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'demo.db'}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        banner = log_path.read_text()
        secret = re.search(r"Demo key .*: (sg-\S+)", banner)
        token = re.search(r"export SPENDGATE_ADMIN_TOKEN=(\S+)", banner)
        assert secret and token, banner
        assert "upstream: simulator" in banner
        client = sdk(f"http://127.0.0.1:{port}/v1", secret.group(1))
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        assert reply.usage is not None and reply.usage.total_tokens > 0
        usage = httpx.get(
            f"http://127.0.0.1:{port}/admin/v1/usage",
            timeout=10,
            headers={"Authorization": f"Bearer {token.group(1)}"},
        ).json()
        assert usage["totals"]["requests"] == 1
        limits = httpx.get(
            f"http://127.0.0.1:{port}/admin/v1/limits",
            timeout=10,
            headers={"Authorization": f"Bearer {token.group(1)}"},
        ).json()
        assert sorted((lim["scope"].split(":")[0], lim["period"]) for lim in limits) == [
            ("key", "day"),
            ("org", "month"),
        ]
        assert all(lim["spent_nanos"] > 0 and lim["reserved_nanos"] == 0 for lim in limits)
    finally:
        stop(process)


def test_config_routes_models_and_the_price_file_prices_them(
    tmp_path: Path, upstream_url: str, sdk: Sdk
) -> None:
    (tmp_path / "prices.toml").write_text(
        '[[prices]]\nmodel = "house-llama"\ninput_mtok = "0.50"\noutput_mtok = "1.50"\n'
        '[[prices]]\nmodel = "gpt-4o-mini"\ninput_mtok = "0.10"\noutput_mtok = "0.20"\n'
    )
    (tmp_path / "spendgate.toml").write_text(
        f'price_file = "prices.toml"\n[[upstreams]]\nname = "house"\nbase_url = "{upstream_url}"\n'
        'api_key = "house-key"\nmodels = ["house-*"]\n'
    )
    dead = f"http://127.0.0.1:{free_port()}/v1"  # the default upstream: nothing listens there
    gw = start_gateway(tmp_path, dead, "--config", str(tmp_path / "spendgate.toml"))
    try:
        _, secret = gw.new_key()
        client = sdk(gw.v1, secret)
        raw = client.chat.completions.with_raw_response.create(model="house-llama", messages=CHAT)
        reply = raw.parse()
        event = gw.event(raw.headers["x-request-id"])
        assert event["upstream"] == "house"
        assert reply.usage is not None
        expected = reply.usage.prompt_tokens * Decimal("0.50") + reply.usage.completion_tokens * Decimal(
            "1.50"
        )
        assert event["cost_nanos"] == usd_to_nanos(expected / 1_000_000)
        # gpt-4o-mini is not routed to "house": it goes to the (dead) default upstream.
        failed = httpx.post(
            gw.v1 + "/chat/completions",
            timeout=30,
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-4o-mini", "messages": CHAT},
        )
        assert failed.status_code == 502
    finally:
        stop(gw.process)


def test_cli_drives_the_admin_api(gateway: Gateway, sdk: Sdk) -> None:
    cli = gateway.cli
    org = cli("orgs", "create", "Cli Co", "--timezone", "Asia/Shanghai")
    project = cli("projects", "create", org["id"], "web")
    key = cli("keys", "create", project["id"], "--name", "ci", "--models", "gpt-4o-mini,o3-mini")
    assert key["secret"].startswith("sg-") and key["models"] == ["gpt-4o-mini", "o3-mini"]
    client = sdk(gateway.v1, key["secret"])
    client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    client.chat.completions.create(model="o3-mini", messages=CHAT)
    usage = cli("usage", f"org:{org['id']}", "--by", "model")
    assert usage["timezone"] == "Asia/Shanghai" and usage["totals"]["requests"] == 2
    assert [row["group"] for row in usage["rows"]] == ["gpt-4o-mini", "o3-mini"]
    assert sum(row["cost_nanos"] for row in usage["rows"]) == usage["totals"]["cost_nanos"]
    by_day = cli("usage", f"key:{key['id']}", "--by", "day")
    assert sum(row["requests"] for row in by_day["rows"]) == 2
    assert [k["id"] for k in cli("keys", "list", project["id"])] == [key["id"]]
    assert cli("keys", "revoke", key["id"])["revoked_at"] is not None
    assert any(o["id"] == org["id"] for o in cli("orgs", "list"))

    denied = gateway.cli_run("orgs", "list", token="wrong")
    assert denied.returncode == 1 and "401" in denied.stdout


def test_health_and_metrics(gateway: Gateway, sdk: Sdk) -> None:
    assert httpx.get(gateway.url + "/healthz").json()["status"] == "ok"
    _, secret = gateway.new_key()
    sdk(gateway.v1, secret).chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'spendgate_requests_total{endpoint="chat/completions",status="200"}' in metrics
    assert "spendgate_request_duration_seconds_bucket" in metrics
    assert 'spendgate_cost_nano_usd_total{model="gpt-4o-mini"}' in metrics
    assert httpx.get(gateway.url + "/admin/v1/openapi.json").json()["info"]["title"] == "spendgate admin API"


def test_a_killed_gateway_has_recorded_every_response_it_completed(tmp_path: Path, upstream_url: str) -> None:
    """SIGKILL in the middle of a burst: each call that got its full answer has its usage event."""
    gw = start_gateway(tmp_path, upstream_url)
    key_id, secret = gw.new_key()
    completed: list[str] = []

    async def burst() -> None:
        client = AsyncOpenAI(base_url=gw.v1, api_key=secret, max_retries=0, timeout=30)
        hundred_done = asyncio.Event()

        async def one(i: int) -> None:
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"call {i}"}],
                    extra_headers={"x-sim-delay-ms": str(i * 5)},
                )
                raw.parse()
                completed.append(raw.headers["x-request-id"])
            except Exception:
                pass  # calls cut by the kill are expected to fail
            if len(completed) == 100:
                hundred_done.set()

        async def killer() -> None:
            await hundred_done.wait()
            gw.process.send_signal(signal.SIGKILL)

        await asyncio.gather(killer(), *(one(i) for i in range(400)))
        await client.close()

    asyncio.run(burst())
    gw.process.wait()
    assert 100 <= len(completed) < 400, "the kill should land mid-burst"
    engine = create_engine(f"sqlite:///{gw.db_path}")
    with engine.connect() as c:
        recorded = {
            row[0]
            for row in c.execute(text("SELECT request_id FROM usage_events WHERE key_id = :k"), {"k": key_id})
        }
    engine.dispose()
    assert set(completed) <= recorded


def test_sigterm_drains_in_flight_calls(tmp_path: Path, upstream_url: str) -> None:
    gw = start_gateway(tmp_path, upstream_url)
    key_id, secret = gw.new_key()
    results: list[int] = []

    async def calls() -> None:
        client = AsyncOpenAI(base_url=gw.v1, api_key=secret, max_retries=0, timeout=30)

        async def one() -> None:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=CHAT, extra_headers={"x-sim-delay-ms": "700"}
            )
            results.append(reply.usage.total_tokens if reply.usage else 0)

        async def terminate() -> None:
            await asyncio.sleep(0.3)
            gw.process.send_signal(signal.SIGTERM)

        await asyncio.gather(terminate(), *(one() for _ in range(20)))
        await client.close()

    asyncio.run(calls())
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells what stopped it.
    assert gw.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert len(results) == 20
    engine = create_engine(f"sqlite:///{gw.db_path}")
    with engine.connect() as c:
        count = c.execute(text("SELECT count(*) FROM usage_events WHERE key_id = :k"), {"k": key_id}).scalar()
    engine.dispose()
    assert count == 20


def test_the_test_clock_moves_metering_time(tmp_path: Path, upstream_url: str, sdk: Sdk) -> None:
    gw = start_gateway(tmp_path, upstream_url, "--test-clock")
    try:
        cli = gw.cli
        assert cli("clock", "set", "2026-01-31T23:00:00+00:00")["now"].startswith("2026-01-31T23:00")
        key_id, secret = gw.new_key()
        client = sdk(gw.v1, secret)
        january = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
        assert cli("clock", "advance", "2h")["now"].startswith("2026-02-01T01:00")
        february = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
        assert gw.event(january.headers["x-request-id"])["occurred_at"].startswith("2026-01-31T23:00")
        assert gw.event(february.headers["x-request-id"])["occurred_at"].startswith("2026-02-01T01:00")
        assert cli("usage", f"key:{key_id}")["totals"]["requests"] == 1  # the current month: February
    finally:
        stop(gw.process)


def test_the_clock_cannot_move_without_test_clock(gateway: Gateway) -> None:
    done = gateway.cli_run("clock", "advance", "1d")
    assert done.returncode == 1 and "--test-clock" in done.stdout
