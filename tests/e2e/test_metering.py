"""The official openai SDK against `spendgate serve` in a real process: every call's response is what
the upstream sent, it leaves exactly one usage event, and the event's cost is genai-prices' own
calculation for the reported usage, to the nano-dollar."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import genai_prices
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from spendgate.domain.money import format_usd, usd_to_nanos
from tests.e2e.conftest import Gateway

CHAT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three rivers in China and one fact about each."}
]
FLAVOR = {
    "chat/completions": "chat",
    "completions": "chat",
    "embeddings": "embeddings",
    "responses": "responses",
}


def genai_nanos(endpoint: str, response: dict[str, Any], at: str) -> int:
    """genai-prices' own extraction and price for a response body, independent of spendgate's code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extracted = genai_prices.extract_usage(response, provider_id="openai", api_flavor=FLAVOR[endpoint])
        price = extracted.calc_price(genai_request_timestamp=datetime.fromisoformat(at))
    return usd_to_nanos(price.total_price)


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> tuple[str, str]:
    return gateway.new_key()


@pytest.fixture(scope="module")
def client(gateway: Gateway, key: tuple[str, str]) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.v1, api_key=key[1], max_retries=0) as sdk_client:
        yield sdk_client


@pytest.fixture(scope="module")
def direct(gateway: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.upstream_url, api_key="direct", max_retries=0) as sdk_client:
        yield sdk_client


def check_event(
    gateway: Gateway, request_id: str, endpoint: str, body: dict[str, Any], key_id: str, streamed: bool
) -> dict[str, Any]:
    event = gateway.event(request_id)
    assert event["key_id"] == key_id
    assert (event["endpoint"], event["status"], event["streamed"], event["estimated"]) == (
        endpoint,
        "ok",
        streamed,
        False,
    )
    assert event["cost_nanos"] == genai_nanos(endpoint, body, event["occurred_at"])
    assert event["cost_nanos"] > 0
    return dict(event)


def test_chat_completion_is_passed_through_and_priced(
    gateway: Gateway, client: OpenAI, direct: OpenAI, key: tuple[str, str]
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
    reply = raw.parse()
    upstream = direct.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    assert reply.choices[0].message.content == upstream.choices[0].message.content
    assert reply.usage == upstream.usage
    request_id = raw.headers["x-request-id"]
    event = check_event(gateway, request_id, "chat/completions", reply.model_dump(), key[0], streamed=False)
    assert raw.headers["x-spendgate-cost-usd"] == format_usd(event["cost_nanos"])
    assert reply.usage is not None and event["input_tokens"] == reply.usage.prompt_tokens


def test_stream_without_include_usage_is_metered_and_the_usage_chunk_hidden(
    gateway: Gateway, client: OpenAI, direct: OpenAI, key: tuple[str, str]
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT, stream=True)
    chunks = list(raw.parse())
    assert all(chunk.usage is None for chunk in chunks), "spendgate asked for usage; the client did not"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    upstream = direct.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    assert text == upstream.choices[0].message.content
    check_event(
        gateway, raw.headers["x-request-id"], "chat/completions", upstream.model_dump(), key[0], streamed=True
    )
    assert "x-spendgate-cost-usd" not in raw.headers


def test_stream_with_include_usage_keeps_the_usage_chunk(
    gateway: Gateway, client: OpenAI, key: tuple[str, str]
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="o3-mini", messages=CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    final = chunks[-1]
    assert final.usage is not None and final.usage.completion_tokens_details is not None
    assert (final.usage.completion_tokens_details.reasoning_tokens or 0) > 0
    event = check_event(
        gateway,
        raw.headers["x-request-id"],
        "chat/completions",
        {"model": final.model, "usage": final.usage.model_dump()},
        key[0],
        streamed=True,
    )
    assert event["reasoning_tokens"] == final.usage.completion_tokens_details.reasoning_tokens


def test_cached_input_tokens_are_priced_at_the_cached_rate(
    gateway: Gateway, client: OpenAI, key: tuple[str, str]
) -> None:
    long_prompt: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "spendgate meters tokens exactly. " * 300}
    ]
    client.chat.completions.create(model="gpt-4o", messages=long_prompt)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=long_prompt)
    reply = raw.parse()
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    cached = reply.usage.prompt_tokens_details.cached_tokens
    assert cached is not None and cached >= 1024
    event = check_event(
        gateway, raw.headers["x-request-id"], "chat/completions", reply.model_dump(), key[0], streamed=False
    )
    assert event["cached_input_tokens"] == cached
    uncached_nanos = genai_nanos(
        "chat/completions",
        {
            "model": "gpt-4o",
            "usage": {
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
            },
        },
        event["occurred_at"],
    )
    assert event["cost_nanos"] < uncached_nanos


def test_legacy_completions(gateway: Gateway, client: OpenAI, key: tuple[str, str]) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon a time"
    )
    check_event(
        gateway, raw.headers["x-request-id"], "completions", raw.parse().model_dump(), key[0], streamed=False
    )


def test_embeddings(gateway: Gateway, client: OpenAI, direct: OpenAI, key: tuple[str, str]) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a river", "a lake"]
    )
    reply = raw.parse()
    upstream = direct.embeddings.create(model="text-embedding-3-small", input=["a river", "a lake"])
    assert [d.embedding for d in reply.data] == [d.embedding for d in upstream.data]
    check_event(
        gateway, raw.headers["x-request-id"], "embeddings", reply.model_dump(), key[0], streamed=False
    )


def test_responses_api(gateway: Gateway, client: OpenAI, direct: OpenAI, key: tuple[str, str]) -> None:
    raw = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="Describe the Yangtze.")
    reply = raw.parse()
    assert (
        reply.output_text
        == direct.responses.create(model="gpt-4.1-mini", input="Describe the Yangtze.").output_text
    )
    check_event(gateway, raw.headers["x-request-id"], "responses", reply.model_dump(), key[0], streamed=False)


async def test_async_clients_stream_and_not(gateway: Gateway, key: tuple[str, str]) -> None:
    client = AsyncOpenAI(base_url=gateway.v1, api_key=key[1], max_retries=0)
    raw = await client.responses.with_raw_response.create(
        model="o4-mini", input="Explain tides.", stream=True
    )
    completed = None
    async for event in raw.parse():
        if event.type == "response.completed":
            completed = event.response
    assert completed is not None and completed.usage is not None
    check_event(
        gateway, raw.headers["x-request-id"], "responses", completed.model_dump(), key[0], streamed=True
    )

    raw_chat = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
    check_event(
        gateway,
        raw_chat.headers["x-request-id"],
        "chat/completions",
        raw_chat.parse().model_dump(),
        key[0],
        streamed=False,
    )
    raw_emb = await client.embeddings.with_raw_response.create(model="text-embedding-3-large", input="tides")
    check_event(
        gateway,
        raw_emb.headers["x-request-id"],
        "embeddings",
        raw_emb.parse().model_dump(),
        key[0],
        streamed=False,
    )
    await client.close()


async def test_300_concurrent_calls_give_300_events_that_sum_to_the_total(gateway: Gateway) -> None:
    key_id, secret = gateway.new_key()
    client = AsyncOpenAI(base_url=gateway.v1, api_key=secret, max_retries=0, timeout=120)

    async def call(i: int) -> str:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "user", "content": f"Question {i}: what is {i} squared?"}
        ]
        if i % 3 == 0:
            stream = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages, stream=True
            )
            async for _ in stream.parse():
                pass
            return stream.headers["x-request-id"]
        if i % 3 == 1:
            chat = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages
            )
            return chat.headers["x-request-id"]
        embedding = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=str(i)
        )
        return embedding.headers["x-request-id"]

    request_ids = await asyncio.gather(*(call(i) for i in range(300)))
    await client.close()
    assert len(set(request_ids)) == 300
    usage = gateway.usage(f"key:{key_id}")
    assert usage["totals"]["requests"] == 300
    events = [gateway.event(rid) for rid in request_ids]
    assert sum(e["cost_nanos"] for e in events) == usage["totals"]["cost_nanos"]
    assert all(e["status"] == "ok" for e in events)
