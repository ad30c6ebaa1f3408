"""Hard limits under a burst, through the openai SDK against real processes: total spend never
passes the limit, the refused calls get 429 spend_limit_exceeded, and the burst uses the limit up to
within one call's worst case (calls that fit wait for others' reservations instead of being refused)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from spendgate.domain.money import format_usd, parse_usd
from tests.e2e.conftest import SPENDGATE, Gateway, Sdk, free_port, start_gateway, stop, wait_until_up

WORST_CASE = re.compile(r"could cost up to \$([0-9]+(?:\.[0-9]+)?)")


@pytest.fixture(scope="module")
def slow_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """spendgate in front of a simulator that takes 50 ms per call."""
    tmp = tmp_path_factory.mktemp("limits")
    port = free_port()
    with (tmp / "sim.log").open("wb") as log:
        simulator = subprocess.Popen(
            [*SPENDGATE, "simulate-upstream", "--port", str(port), "--delay-ms", "50"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/v1/models", simulator)
        gateway = start_gateway(tmp, f"http://127.0.0.1:{port}/v1")
        try:
            yield gateway
        finally:
            stop(gateway.process)
    finally:
        stop(simulator)


def scopes_of(gateway: Gateway) -> dict[str, str]:
    org = gateway.admin("POST", "/orgs", json={"name": "limits", "timezone": "Asia/Shanghai"})
    project = gateway.admin("POST", "/projects", json={"org_id": org["id"], "name": "p"})
    key = gateway.admin("POST", "/keys", json={"project_id": project["id"], "name": "k"})
    return {"org": org["id"], "project": project["id"], "key": key["id"], "secret": key["secret"]}


async def burst(gateway: Gateway, secret: str, calls: int) -> tuple[list[str], list[openai.RateLimitError]]:
    """`calls` concurrent calls, a third of them streamed; returns the ids of those answered, and the
    429s."""
    client = AsyncOpenAI(base_url=gateway.v1, api_key=secret, max_retries=0, timeout=120)
    answered: list[str] = []
    refused: list[openai.RateLimitError] = []

    async def one(i: int) -> None:
        messages: Any = [{"role": "user", "content": f"Question {i}: name a river."}]
        try:
            if i % 3 == 0:
                stream = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=24, stream=True
                )
                async for _ in stream.parse():
                    pass
                answered.append(stream.headers["x-request-id"])
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=24
                )
                answered.append(raw.headers["x-request-id"])
        except openai.RateLimitError as exc:
            refused.append(exc)

    await asyncio.gather(*(one(i) for i in range(calls)))
    await client.close()
    return answered, refused


def one_call_cost(gateway: Gateway) -> int:
    probe = scopes_of(gateway)
    answered, _ = asyncio.run(burst(gateway, probe["secret"], 3))
    return max(int(gateway.event(request_id)["cost_nanos"]) for request_id in answered)


def test_500_concurrent_calls_never_pass_a_limit_that_admits_about_40(slow_gateway: Gateway) -> None:
    gateway = slow_gateway
    hard = 40 * one_call_cost(gateway)
    ids = scopes_of(gateway)
    gateway.admin("POST", "/limits", json={"scope": f"key:{ids['key']}", "hard_usd": format_usd(hard)})

    answered, refused = asyncio.run(burst(gateway, ids["secret"], 500))

    usage = gateway.usage(f"key:{ids['key']}")
    spent = usage["totals"]["cost_nanos"]
    assert usage["totals"]["requests"] == len(answered)
    assert len(answered) + len(refused) == 500
    assert spent <= hard
    assert refused, "a limit that admits about 40 calls must refuse most of 500"
    worst_case = max(parse_usd(WORST_CASE.search(str(e.message)).group(1)) for e in refused)  # type: ignore[union-attr]
    assert hard - spent < worst_case, "calls that fit were refused while the limit had room"
    for error in refused:
        body: Any = error.body
        assert error.status_code == 429 and body["type"] == "insufficient_quota"
        assert body["code"] == "spend_limit_exceeded"
        assert f"key:{ids['key']}" in body["message"] and "resets at" in body["message"]
    [standing] = usage["limits"]
    assert standing["spent_nanos"] == spent and standing["reserved_nanos"] == 0
    assert standing["remaining_nanos"] == hard - spent
    print(
        f"\nlimit {hard} nanos: {len(answered)} answered, {len(refused)} refused, spent {spent} "
        f"({Decimal(spent) / hard:.1%}), worst case {worst_case}"
    )


def test_the_tightest_of_key_project_and_org_limits_wins(slow_gateway: Gateway) -> None:
    gateway = slow_gateway
    cost = one_call_cost(gateway)
    ids = scopes_of(gateway)
    for scope, calls in (("key", 60), ("project", 25), ("org", 45)):
        gateway.admin(
            "POST",
            "/limits",
            json={"scope": f"{scope}:{ids[scope]}", "hard_usd": format_usd(calls * cost), "period": "day"},
        )
    answered, refused = asyncio.run(burst(gateway, ids["secret"], 200))
    spent = gateway.usage(f"project:{ids['project']}")["totals"]["cost_nanos"]
    assert spent <= 25 * cost
    assert refused and all(f"project:{ids['project']}" in str(e.message) for e in refused)
    assert len(answered) >= 10


def test_limits_from_the_cli_and_the_usage_standing(slow_gateway: Gateway, tmp_path: Path) -> None:
    gateway = slow_gateway
    ids = scopes_of(gateway)
    cli = gateway.cli
    limit = cli(
        "limits",
        "set",
        f"project:{ids['project']}",
        "--soft",
        "0.00005",
        "--hard",
        "0.001",
        "--period",
        "week",
    )
    assert (limit["hard_nanos"], limit["soft_nanos"], limit["period"]) == (1_000_000, 50_000, "week")
    assert limit["timezone"] == "Asia/Shanghai" and limit["period_end"] is not None
    asyncio.run(burst(gateway, ids["secret"], 6))
    [standing] = cli("limits", "list", f"project:{ids['project']}")
    spent = gateway.usage(f"project:{ids['project']}")["totals"]["cost_nanos"]
    assert standing["spent_nanos"] == spent > 0 and standing["remaining_nanos"] == 1_000_000 - spent
    assert parse_usd(standing["burn_rate_usd_per_hour"]) > 0
    assert cli("usage", f"key:{ids['key']}")["limits"] == []  # the limit is on the project
    cli("limits", "remove", f"project:{ids['project']}", "--period", "week")
    assert cli("limits", "list", f"project:{ids['project']}") == []
    bad = gateway.cli_run("limits", "set", "team:x", "--hard", "1")
    assert bad.returncode == 1 and "org:ID" in bad.stdout


def test_every_way_a_call_ends_gives_its_hold_back(gateway: Gateway, sdk: Sdk) -> None:
    """Upstream errors, timeouts, cut streams and clients that leave: each settles or releases its
    hold, so nothing stays reserved."""
    import json
    import socket

    import httpx

    ids = scopes_of(gateway)
    gateway.admin("POST", "/limits", json={"scope": f"key:{ids['key']}", "hard_usd": "1", "period": "day"})
    auth = {"Authorization": f"Bearer {ids['secret']}"}
    messages: Any = [{"role": "user", "content": "hello"}]
    body = {"model": "gpt-4o-mini", "messages": messages}
    for fault in ({"x-sim-status": "500"}, {"x-sim-status": "400"}, {"x-sim-first-byte-ms": "5000"}):
        httpx.post(gateway.v1 + "/chat/completions", json=body, headers={**auth, **fault}, timeout=30)
    client = sdk(gateway.v1, ids["secret"])
    with contextlib.suppress(openai.APIError):
        for _ in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=body["messages"],
            stream=True,
            extra_headers={"x-sim-cut-after": "3"},
        ):
            pass
    payload = json.dumps({**body, "stream": True}).encode()
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:  # a client that leaves mid-stream
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ids['secret']}\r\nx-sim-output-tokens: 3000\r\n".encode()
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        received = b""
        while received.count(b"data:") < 3:
            received += sock.recv(65536)
    deadline = time.monotonic() + 10
    while True:
        [standing] = gateway.usage(f"key:{ids['key']}")["limits"]
        usage = gateway.usage(f"key:{ids['key']}")["totals"]
        if standing["reserved_nanos"] == 0 and usage["requests"] == 5:
            break
        assert time.monotonic() < deadline, f"still held: {standing}, {usage}"
        time.sleep(0.1)
    assert standing["spent_nanos"] == usage["cost_nanos"] > 0  # the cut streams were billed
