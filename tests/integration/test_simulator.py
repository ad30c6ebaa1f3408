"""The simulated upstream, driven by the official openai SDK (and raw HTTP where the SDK hides details)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from spendgate.adapters.tokenizer import count_input_tokens, count_text_tokens
from spendgate.simulator import (
    HEADER_CUT_AFTER,
    HEADER_DELAY_MS,
    HEADER_FIRST_BYTE_MS,
    HEADER_OUTPUT_TOKENS,
    HEADER_STATUS,
    SimulatorConfig,
    base_url,
    start_simulator,
)
from spendgate.simulator.generation import WORDS, is_reasoning_model

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Tell me about rivers 🌊 and 川."},
]
LONG_PROMPT = "Summarise this. " + " ".join(WORDS * 25)  # ~1600 tokens


@pytest.fixture(scope="session")
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start_simulator("127.0.0.1", 0, SimulatorConfig())
    yield base_url("127.0.0.1", port)
    await runner.cleanup()


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=sim_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-test"}) as session:
        yield session


async def raw_events(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[bytes]:
    """The raw SSE events of a streamed request (each without its trailing blank line)."""
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = await response.read()
    assert text.endswith(b"\n\n")
    return text[:-2].split(b"\n\n")


def sse_json(event: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(event.split(b"data: ", 1)[1])
    return data


# -- chat/completions -------------------------------------------------------------------------------


async def test_chat_usage_matches_tokenizer(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    usage = result.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    content = result.choices[0].message.content
    assert content
    assert usage.prompt_tokens == count_input_tokens("chat/completions", {"messages": MESSAGES}, "gpt-4o")
    assert usage.completion_tokens == count_text_tokens(content, "gpt-4o") == 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert result.choices[0].finish_reason == "stop"
    again = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert again.choices[0].message.content == content and again.id != result.id


async def test_chat_stream_without_usage(
    client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession
) -> None:
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    plain = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert text == plain.choices[0].message.content

    events = await raw_events(
        http, f"{sim_url}/chat/completions", {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    )
    assert events[-1] == b"data: [DONE]"
    assert all("usage" not in sse_json(e) for e in events[:-1])


async def test_chat_stream_with_usage(client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert last.usage.completion_tokens == count_text_tokens(text, "gpt-4o")
    assert last.usage.prompt_tokens == count_input_tokens(
        "chat/completions", {"messages": MESSAGES}, "gpt-4o"
    )

    body = {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = await raw_events(http, f"{sim_url}/chat/completions", body)
    assert events[-1] == b"data: [DONE]"
    decoded = [sse_json(e) for e in events[:-1]]
    assert all("usage" in d and d["usage"] is None for d in decoded[:-1])
    assert decoded[-1]["choices"] == [] and decoded[-1]["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "audio_tokens": 0,
    }


async def test_chat_n_choices_sum_usage(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    texts = [c.message.content or "" for c in result.choices]
    assert len(set(texts)) == 3
    assert result.usage is not None
    assert result.usage.completion_tokens == sum(count_text_tokens(t, "gpt-4o-mini") for t in texts)


# -- completions --------------------------------------------------------------------------------------


async def test_completions(client: AsyncOpenAI) -> None:
    model = "gpt-3.5-turbo-instruct"
    result = await client.completions.create(model=model, prompt="Once upon a time", max_tokens=10)
    assert result.usage is not None and result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens == count_text_tokens("Once upon a time", model)
    assert result.usage.completion_tokens == count_text_tokens(result.choices[0].text, model) == 10
    assert result.choices[0].finish_reason == "length"

    stream = await client.completions.create(
        model=model,
        prompt="Once upon a time",
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks[:-1]) == result.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == result.usage

    stream = await client.completions.create(model=model, prompt=["one", "two"], stream=True)
    assert all([chunk.usage is None async for chunk in stream])


# -- embeddings ---------------------------------------------------------------------------------------


async def test_embeddings_default_base64_and_float(
    client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession
) -> None:
    model = "text-embedding-3-small"
    inputs = ["first text", "second, longer text ✨"]
    default = await client.embeddings.create(model=model, input=inputs)  # the SDK asks for base64
    floats = await client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert len(default.data) == 2 and len(default.data[0].embedding) == 8
    assert default.data[0].embedding != default.data[1].embedding
    assert abs(sum(v * v for v in default.data[0].embedding) - 1) < 1e-5
    assert (
        default.usage.prompt_tokens
        == default.usage.total_tokens
        == count_input_tokens("embeddings", {"input": inputs}, model)
    )

    sized = await client.embeddings.create(model=model, input=[[1, 2, 3], [4, 5]], dimensions=256)
    assert [len(d.embedding) for d in sized.data] == [256, 256] and sized.usage.prompt_tokens == 5

    async with http.post(
        f"{sim_url}/embeddings", json={"model": model, "input": "x", "encoding_format": "base64"}
    ) as r:
        assert isinstance((await r.json())["data"][0]["embedding"], str)
    async with http.post(
        f"{sim_url}/embeddings", json={"model": model, "input": "x", "dimensions": 3073}
    ) as r:
        assert r.status == 400


# -- responses ----------------------------------------------------------------------------------------


async def test_responses(client: AsyncOpenAI) -> None:
    body: dict[str, Any] = {"instructions": "Be brief.", "input": "What is a river?"}
    result = await client.responses.create(
        model="gpt-4.1", instructions="Be brief.", input="What is a river?"
    )
    assert result.status == "completed" and result.usage is not None
    assert result.usage.input_tokens == count_input_tokens("responses", body, "gpt-4.1")
    assert result.usage.output_tokens == count_text_tokens(result.output_text, "gpt-4.1") == 16
    assert result.usage.input_tokens_details.cached_tokens == 0
    assert result.usage.output_tokens_details.reasoning_tokens == 0

    stream = await client.responses.create(
        model="gpt-4.1", instructions="Be brief.", input="What is a river?", stream=True
    )
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == result.output_text
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage == result.usage


async def test_responses_stream_helper_and_event_lines(
    client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession
) -> None:
    async with client.responses.stream(model="o4-mini", input=[{"role": "user", "content": "hi"}]) as stream:
        final = await stream.get_final_response()
    assert final.usage is not None and final.output_text
    assert [item.type for item in final.output] == ["reasoning", "message"]

    events = await raw_events(
        http, f"{sim_url}/responses", {"model": "gpt-4o", "input": "hi", "stream": True}
    )
    for event in events:
        event_line, data_line = event.split(b"\n")
        assert event_line.removeprefix(b"event: ").decode() == sse_json(data_line)["type"]


async def test_sync_client_in_a_thread(sim_url: str) -> None:
    def run() -> list[int]:
        with OpenAI(base_url=sim_url, api_key="sk-test", max_retries=0) as sync:
            chat = sync.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=5)
            stream = sync.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            streamed = [chunk.usage.completion_tokens for chunk in stream if chunk.usage]
            text = sync.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=3)
            vectors = sync.embeddings.create(model="text-embedding-3-large", input="hi")
            answer = sync.responses.create(model="gpt-5", input="hi", max_output_tokens=30)
            assert chat.usage and text.usage and answer.usage
            return [
                chat.usage.completion_tokens,
                *streamed,
                text.usage.completion_tokens,
                len(vectors.data[0].embedding),
                answer.usage.output_tokens,
            ]

    assert await asyncio.to_thread(run) == [5, 16, 3, 8, 30]


# -- caching, reasoning, output length ----------------------------------------------------------------


async def test_cached_tokens_on_repeat(client: AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": LONG_PROMPT + " (chat)"}]
    first = await client.chat.completions.create(model="gpt-4o", messages=messages)
    second = await client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=4)
    assert (
        first.usage
        and first.usage.prompt_tokens_details
        and second.usage
        and second.usage.prompt_tokens_details
    )
    assert first.usage.prompt_tokens >= 1024 and first.usage.prompt_tokens % 128 != 0
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == first.usage.prompt_tokens // 128 * 128

    other_model = await client.chat.completions.create(model="gpt-4.1", messages=messages)
    assert other_model.usage and other_model.usage.prompt_tokens_details
    assert other_model.usage.prompt_tokens_details.cached_tokens == 0

    one = await client.responses.create(model="gpt-4o", input=LONG_PROMPT + " (responses)")
    two = await client.responses.create(model="gpt-4o", input=LONG_PROMPT + " (responses)")
    assert one.usage and two.usage
    assert one.usage.input_tokens_details.cached_tokens == 0
    assert two.usage.input_tokens_details.cached_tokens == two.usage.input_tokens // 128 * 128 > 0


async def test_short_prompts_are_never_cached(client: AsyncOpenAI) -> None:
    for _ in range(2):
        result = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert result.usage and result.usage.prompt_tokens_details
        assert result.usage.prompt_tokens_details.cached_tokens == 0


async def test_reasoning_tokens_for_o3_mini(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="o3-mini", messages=MESSAGES)
    usage = result.usage
    assert usage and usage.completion_tokens_details
    visible = count_text_tokens(result.choices[0].message.content or "", "o3-mini")
    assert visible == 16
    assert usage.completion_tokens_details.reasoning_tokens == 2 * visible
    assert usage.completion_tokens == 3 * visible

    capped = await client.chat.completions.create(
        model="o3-mini", messages=MESSAGES, max_completion_tokens=20
    )
    assert capped.usage and capped.usage.completion_tokens_details
    assert capped.usage.completion_tokens == 20 and capped.choices[0].finish_reason == "length"
    assert capped.usage.completion_tokens_details.reasoning_tokens == 20 - count_text_tokens(
        capped.choices[0].message.content or "", "o3-mini"
    )

    answer = await client.responses.create(model="o3-mini", input="hi")
    assert answer.usage and answer.usage.output_tokens_details.reasoning_tokens == 32
    assert answer.usage.output_tokens == 48


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "o3-mini", "gpt-5-mini"])
@pytest.mark.parametrize("cap", [1, 2, 3, 7, 16, 40])
async def test_output_never_exceeds_cap(client: AsyncOpenAI, model: str, cap: int) -> None:
    headers = {HEADER_OUTPUT_TOKENS: "30"}
    chat = await client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=cap, extra_headers=headers
    )
    assert chat.usage is not None and chat.usage.completion_tokens <= cap
    assert count_text_tokens(chat.choices[0].message.content or "", model) <= cap
    full = 90 if is_reasoning_model(model) else 30  # reasoning adds 2 tokens per visible one
    truncated = cap < full
    assert chat.choices[0].finish_reason == ("length" if truncated else "stop")
    assert chat.usage.completion_tokens == (cap if truncated else full)

    stream = await client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_completion_tokens=cap,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= cap

    if cap >= 16:  # the Responses API's minimum max_output_tokens
        answer = await client.responses.create(
            model=model, input="hi", max_output_tokens=cap, extra_headers=headers
        )
        assert answer.usage is not None and answer.usage.output_tokens <= cap
        assert answer.status == ("incomplete" if truncated else "completed")


async def test_output_tokens_header_sets_length(client: AsyncOpenAI) -> None:
    long = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_OUTPUT_TOKENS: "300"}
    )
    assert long.usage is not None and long.usage.completion_tokens == 300
    empty = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_OUTPUT_TOKENS: "0"}
    )
    assert empty.usage is not None and empty.usage.completion_tokens == 0
    assert empty.choices[0].message.content == ""


async def test_responses_incomplete_when_capped(client: AsyncOpenAI) -> None:
    headers = {HEADER_OUTPUT_TOKENS: "50"}
    answer = await client.responses.create(
        model="gpt-4o", input="hi", max_output_tokens=20, extra_headers=headers
    )
    assert answer.status == "incomplete" and answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"
    stream = await client.responses.create(
        model="gpt-4o", input="hi", max_output_tokens=20, extra_headers=headers, stream=True
    )
    last = [event async for event in stream][-1]
    assert last.type == "response.incomplete" and last.response.usage == answer.usage


# -- faults and errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
async def test_status_header(
    client: AsyncOpenAI, status: int, error: type[openai.APIStatusError], error_type: str
) -> None:
    with pytest.raises(error) as raised:
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_STATUS: str(status)}
        )
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert raised.value.body["type"] == error_type
    with pytest.raises(error):
        await client.responses.create(
            model="gpt-4o", input="hi", stream=True, extra_headers={HEADER_STATUS: str(status)}
        )


async def test_cut_after_streaming(client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession) -> None:
    received = []
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={HEADER_CUT_AFTER: "3"}
    )
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3

    events = []
    stream_r = await client.responses.create(
        model="gpt-4o", input="hi", stream=True, extra_headers={HEADER_CUT_AFTER: "5"}
    )
    with pytest.raises(openai.APIConnectionError):
        async for event in stream_r:
            events.append(event.type)
    assert len(events) == 5 and "response.completed" not in events

    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    async with http.post(
        f"{sim_url}/chat/completions", json=body, headers={HEADER_CUT_AFTER: "2"}
    ) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_cut_after_non_streaming(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_CUT_AFTER: "40"}
        )
    with pytest.raises(openai.APIConnectionError):
        await client.embeddings.create(
            model="text-embedding-3-small", input="hi", extra_headers={HEADER_CUT_AFTER: "0"}
        )


async def test_delay_headers(client: AsyncOpenAI, sim_url: str, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_DELAY_MS: "150"}
    )
    assert time.monotonic() - started >= 0.14

    started = time.monotonic()
    await client.embeddings.create(
        model="text-embedding-3-small", input="x", extra_headers={HEADER_FIRST_BYTE_MS: "150"}
    )
    assert time.monotonic() - started >= 0.14

    # Streaming: headers wait for x-sim-first-byte-ms, the first event also for x-sim-delay-ms.
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    headers = {HEADER_FIRST_BYTE_MS: "100", HEADER_DELAY_MS: "200"}
    started = time.monotonic()
    async with http.post(f"{sim_url}/chat/completions", json=body, headers=headers) as response:
        headers_at = time.monotonic() - started
        await response.content.readuntil(b"\n\n")
        first_event_at = time.monotonic() - started
        await response.read()
    assert 0.09 <= headers_at < 0.25 and first_event_at >= 0.29


async def test_server_wide_delays() -> None:
    runner, port = await start_simulator("127.0.0.1", 0, SimulatorConfig(delay_ms=100, chunk_delay_ms=20))
    try:
        async with AsyncOpenAI(base_url=base_url("127.0.0.1", port), api_key="k", max_retries=0) as client:
            started = time.monotonic()
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1)
            assert time.monotonic() - started >= 0.09

            started = time.monotonic()
            await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_headers={HEADER_DELAY_MS: "0"}, max_tokens=1
            )
            assert time.monotonic() - started < 0.09  # the header replaces the server's delay

            started = time.monotonic()
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={HEADER_OUTPUT_TOKENS: "5"}
            )
            assert len([chunk async for chunk in stream]) == 7
            assert time.monotonic() - started >= 0.1 + 7 * 0.02 - 0.01  # 7 chunks and [DONE]: 7 gaps
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("header", [HEADER_STATUS, HEADER_DELAY_MS, HEADER_CUT_AFTER, HEADER_OUTPUT_TOKENS])
async def test_invalid_sim_headers_are_rejected(client: AsyncOpenAI, header: str) -> None:
    value = "200" if header == HEADER_STATUS else "-1"
    with pytest.raises(openai.BadRequestError, match=header):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={header: value})


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("chat/completions", b"{not json", None),
        ("chat/completions", b"[1, 2]", None),
        ("chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        ("chat/completions", b'{"model": "gpt-4o"}', "messages"),
        ("chat/completions", b'{"model": "gpt-4o", "messages": []}', "messages"),
        ("chat/completions", b'{"model": "gpt-4o", "messages": "hi"}', "messages"),
        (
            "chat/completions",
            b'{"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": 0}',
            "max_tokens",
        ),
        ("chat/completions", b'{"model": "gpt-4o", "messages": [{"role": "user"}], "n": true}', "n"),
        ("completions", b'{"model": "gpt-3.5-turbo-instruct"}', "prompt"),
        ("completions", b'{"model": "gpt-3.5-turbo-instruct", "prompt": {"a": 1}}', "prompt"),
        ("embeddings", b'{"model": "text-embedding-3-small"}', "input"),
        (
            "embeddings",
            b'{"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}',
            "encoding_format",
        ),
        ("responses", b'{"model": "gpt-4o"}', "input"),
    ],
)
async def test_bad_requests(
    http: aiohttp.ClientSession, sim_url: str, path: str, body: bytes, param: str | None
) -> None:
    async with http.post(
        f"{sim_url}/{path}", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


async def test_missing_api_key_is_401(sim_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{sim_url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}
        ) as r:
            assert r.status == 401
            error = (await r.json())["error"]
        async with session.get(f"{sim_url}/models") as r:
            assert r.status == 401
    assert error["type"] == "invalid_request_error" and "API key" in error["message"]


async def test_models(client: AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert "gpt-4o" in models and "text-embedding-3-small" in models
