"""The burst: 500 concurrent calls through the official openai SDK on a key whose hard limit admits
about 40, against a spendgate of its own in front of a simulator that takes 50 ms per call. It measures
what the limit lets through (utilisation) and whether anything passes it (overspend)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from sgbench.procs import Children, free_port, wait_until_ready
from sgbench.targets import (
    ADMIN_TOKEN,
    MODEL,
    UPSTREAM_KEY,
    admin_client,
    clean_env,
    create_account,
    limit_standings,
    set_hard_limit,
    usage,
    venv_bin,
)

CALLS = 500
ADMITS = 40  # the hard limit is this many times one call's actual cost
MAX_TOKENS = 24
UPSTREAM_DELAY_MS = 50
PROBE_CALLS = 3
STREAM_EVERY = 3  # every third call is streamed
WORST_CASE = re.compile(r"could cost up to \$([0-9]+(?:\.[0-9]+)?)")
NANOS_PER_USD = 1_000_000_000


def usd(nanos: int) -> str:
    """Nano-USD as a plain decimal string, exact: 24_000 -> '0.000024'."""
    text = format((Decimal(nanos) / NANOS_PER_USD).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def dollars(nanos: int) -> str:
    """`usd` for a reader: '$1,000,000.00', '$0.0000309'."""
    whole, _, frac = usd(nanos).partition(".")
    return f"${int(whole):,}.{frac}"


def nanos_of(text: str) -> int:
    return int(Decimal(text) * NANOS_PER_USD)


@dataclass
class Fired:
    """What `calls` concurrent calls got back."""

    answered: list[str] = field(default_factory=list)  # x-request-id of each call answered
    refused: list[openai.RateLimitError] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # anything else, described
    wall_s: float = 0.0


async def fire(v1: str, secret: str, calls: int) -> Fired:
    """`calls` concurrent chat completions with short distinct prompts, every third streamed."""
    client = AsyncOpenAI(base_url=v1, api_key=secret, max_retries=0, timeout=120)
    fired = Fired()

    async def one(i: int) -> None:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": f"Question {i}: name a river."}
        ]
        try:
            if i % STREAM_EVERY == 0:
                raw_stream = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=messages, max_tokens=MAX_TOKENS, stream=True
                )
                async for _ in raw_stream.parse():  # a stream parses without an await
                    pass
                fired.answered.append(raw_stream.headers["x-request-id"])
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=messages, max_tokens=MAX_TOKENS
                )
                raw.parse()  # the body, read already
                fired.answered.append(raw.headers["x-request-id"])
        except openai.RateLimitError as exc:
            fired.refused.append(exc)
        except openai.APIError as exc:
            fired.failed.append(f"{type(exc).__name__}: {exc}"[:300])

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        fired.wall_s = time.perf_counter() - started
    finally:
        await client.close()
    return fired


def spend_limit_refusal(error: openai.RateLimitError) -> bool:
    """HTTP 429 with type insufficient_quota and code spend_limit_exceeded."""
    body: Any = error.body
    return (
        error.status_code == 429
        and isinstance(body, dict)
        and body.get("type") == "insufficient_quota"
        and body.get("code") == "spend_limit_exceeded"
    )


def quoted_worst_case(error: openai.RateLimitError) -> int | None:
    """The worst-case cost a refusal quotes ("this request could cost up to $X"), in nano-USD."""
    found = WORST_CASE.search(str(error.message))
    return nanos_of(found.group(1)) if found else None


@dataclass(frozen=True)
class BurstRun:
    limit_nanos: int
    calls: int
    answered: int
    refused: int
    refused_after_waiting: int  # refusals that first waited for others' reservations to settle
    bad_refusals: int  # 429s that were not spend_limit_exceeded
    failed: list[str]  # answers that were neither 2xx nor 429
    spent_nanos: int  # totals.cost_nanos of the key from GET /admin/v1/usage
    usage_requests: int  # totals.requests of the key
    limit_spent_nanos: int  # the limit's own counter
    reserved_after_nanos: int  # the limit's reserved_nanos once the burst is over (must be 0)
    worst_case_nanos: int | None  # the largest worst case quoted in the 429s
    wall_s: float

    @property
    def utilisation(self) -> float:
        return self.spent_nanos / self.limit_nanos

    @property
    def overspend_nanos(self) -> int:
        return max(0, self.spent_nanos - self.limit_nanos)

    @property
    def room_left_nanos(self) -> int:
        return self.limit_nanos - self.spent_nanos

    @property
    def room_below_worst_case(self) -> bool | None:
        """Whether the room left is less than one call's worst case: the limit was used up as far as it
        could be without risking a pass."""
        return None if self.worst_case_nanos is None else self.room_left_nanos < self.worst_case_nanos

    @property
    def ok(self) -> bool:
        return (
            self.overspend_nanos == 0
            and self.bad_refusals == 0
            and not self.failed
            and self.answered + self.refused == self.calls
            and self.usage_requests == self.answered
            and self.limit_spent_nanos == self.spent_nanos
            and self.reserved_after_nanos == 0
            and self.room_below_worst_case is not False
        )


@dataclass(frozen=True)
class BurstReport:
    one_call_nanos: int  # the dearest of the probe's calls
    probe_costs: list[int]
    runs: list[BurstRun]


def event_cost(base: str, request_id: str, timeout: float = 5.0) -> int:
    """cost_nanos of GET /admin/v1/usage/events/{request_id}, waiting a little if it is not there yet."""
    deadline = time.monotonic() + timeout
    with admin_client(base) as client:
        while True:
            response = client.get(f"/usage/events/{request_id}")
            if response.status_code != 404 or time.monotonic() > deadline:
                response.raise_for_status()
                return int(response.json()["cost_nanos"])
            time.sleep(0.1)


def one_burst(base: str, limit_nanos: int, label: str) -> BurstRun:
    account = create_account(base, label)
    scope = account.scope("key")
    set_hard_limit(base, scope, usd(limit_nanos))
    fired = asyncio.run(fire(f"{base}/v1", account.secret, CALLS))
    [standing] = limit_standings(base, (scope,))
    totals = usage(base, scope)["totals"]
    worst = [w for w in map(quoted_worst_case, fired.refused) if w is not None]
    return BurstRun(
        limit_nanos=limit_nanos,
        calls=CALLS,
        answered=len(fired.answered),
        refused=len(fired.refused),
        refused_after_waiting=sum(str(e.message).startswith("Waited") for e in fired.refused),
        bad_refusals=sum(not spend_limit_refusal(e) for e in fired.refused),
        failed=fired.failed,
        spent_nanos=int(totals["cost_nanos"]),
        usage_requests=int(totals["requests"]),
        limit_spent_nanos=standing.spent_nanos,
        reserved_after_nanos=standing.reserved_nanos,
        worst_case_nanos=max(worst) if worst else None,
        wall_s=fired.wall_s,
    )


def run_bursts(tmp: Path, repeats: int, cpus: str | None = None) -> BurstReport:
    """A simulator with 50 ms per call and a `spendgate serve` (fresh SQLite file, default settings) of
    their own; one call's cost from a probe key, then `repeats` bursts, each on a fresh key."""
    children = Children(tmp)
    try:
        sim_port, port = free_port(), free_port()
        sim = children.start(
            "burst-upstream",
            [venv_bin("spendgate"), "simulate-upstream", "--port", str(sim_port),
             "--delay-ms", str(UPSTREAM_DELAY_MS)],
            clean_env(),
            cpus,
        )  # fmt: skip
        sim_base = f"http://127.0.0.1:{sim_port}"
        wait_until_ready(sim, f"{sim_base}/v1/models", headers={"Authorization": f"Bearer {UPSTREAM_KEY}"})
        argv = [
            venv_bin("spendgate"), "serve", "--port", str(port), "--db", f"sqlite:///{tmp / 'burst.db'}",
            "--upstream", f"{sim_base}/v1",
        ]  # fmt: skip
        env = clean_env(SPENDGATE_ADMIN_TOKEN=ADMIN_TOKEN, SPENDGATE_UPSTREAM_API_KEY=UPSTREAM_KEY)
        gateway = children.start("burst-spendgate", argv, env, cpus)
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(gateway, f"{base}/healthz")
        probe = create_account(base, "burst-probe")
        fired = asyncio.run(fire(f"{base}/v1", probe.secret, PROBE_CALLS))
        if len(fired.answered) != PROBE_CALLS:
            raise RuntimeError(
                f"burst probe: {len(fired.answered)} of {PROBE_CALLS} answered: {fired.failed}"
            )
        costs = [event_cost(base, request_id) for request_id in fired.answered]
        one_call = max(costs)
        runs = [one_burst(base, ADMITS * one_call, f"burst-{i + 1}") for i in range(repeats)]
        if not gateway.alive():
            raise RuntimeError(f"burst spendgate died:\n{gateway.log_tail()}")
        return BurstReport(one_call, costs, runs)
    finally:
        children.stop_all()
