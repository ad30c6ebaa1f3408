"""Alerts through the running server: spend crosses a key's soft limit and shares of its hard limit,
and a real local webhook receiver gets each threshold once, signed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from aiohttp import web

from spendgate.adapters.notify.webhook import verify_signature
from spendgate.domain.money import format_usd
from tests.e2e.conftest import Gateway, Sdk, free_port, start_gateway, stop


def test_a_webhook_gets_each_threshold_once(tmp_path: Path, upstream_url: str, sdk: Sdk) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    port = free_port()

    four = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        if len(received) >= 4:
            four.set()
        return web.Response(status=204)

    async def serve_and_call(gateway: Gateway) -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await asyncio.to_thread(drive, gateway)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(four.wait(), timeout=20)
            await asyncio.sleep(0.5)  # nothing more may arrive
        finally:
            await runner.cleanup()

    secret = ""

    def drive(gateway: Gateway) -> None:
        nonlocal secret
        key_id, key_secret = gateway.new_key()
        org_id = gateway.admin("GET", f"/keys/{key_id}")["org_id"]
        channel = gateway.admin(
            "POST",
            "/alert-channels",
            json={"org_id": org_id, "kind": "webhook", "target": f"http://127.0.0.1:{port}/hook"},
        )
        secret = channel["secret"]
        client = sdk(gateway.v1, key_secret)
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=16
        )
        cost = gateway.event(first.headers["x-request-id"])["cost_nanos"]
        # Soft at 3 calls' cost, hard at 20 (a call's worst case is about 2 calls' cost): calling until
        # refused crosses soft, 50%, 80%, then meets a refusal.
        limit = {
            "scope": f"key:{key_id}",
            "soft_usd": format_usd(3 * cost),
            "hard_usd": format_usd(20 * cost),
            "period": "day",
        }
        gateway.admin("POST", "/limits", json=limit)
        hello: Any = [{"role": "user", "content": "hello"}]
        with contextlib.suppress(openai.RateLimitError):
            for _ in range(25):
                client.chat.completions.create(model="gpt-4o-mini", messages=hello, max_tokens=16)
        with contextlib.suppress(openai.RateLimitError):  # a second refusal in the period alerts no more
            client.chat.completions.create(model="gpt-4o-mini", messages=hello, max_tokens=16)

    gateway = start_gateway(tmp_path, upstream_url)
    try:
        asyncio.run(serve_and_call(gateway))
        history = gateway.admin("GET", "/alerts")
    finally:
        stop(gateway.process)

    payloads: list[Any] = [json.loads(body) for _, body in received]
    assert sorted(p["threshold"]["key"] for p in payloads) == ["hard:50", "hard:80", "refused", "soft"]
    for headers, body in received:
        assert verify_signature(
            secret, headers["spendgate-timestamp"], body, headers["spendgate-signature"], datetime.now(UTC)
        )
        assert not verify_signature(
            secret,
            headers["spendgate-timestamp"],
            body + b" ",
            headers["spendgate-signature"],
            datetime.now(UTC),
        )
    soft = next(p for p in payloads if p["threshold"]["key"] == "soft")
    assert soft["scope"].startswith("key:") and int(soft["spent_nanos"]) >= int(soft["soft_limit_nanos"])
    assert soft["burn_rate_per_hour_usd"] and soft["message"]
    assert len(history) == 4 and all(a["deliveries"][0]["state"] == "delivered" for a in history)
