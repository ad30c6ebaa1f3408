"""The simulated OpenAI-compatible upstream: an aiohttp app serving /v1 with realistic usage.

Timing: the server's `delay_ms` (or the request's x-sim-delay-ms, which replaces it) is waited
before the response content; x-sim-first-byte-ms before the response headers. A non-streamed
reply waits both before sending anything; a stream sends its headers after x-sim-first-byte-ms and
its first event after the delay, then waits `chunk_delay_ms` between events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from spendgate.adapters.tokenizer import count_input_tokens, get_encoding
from spendgate.simulator import payloads, responses_payloads
from spendgate.simulator.faults import (
    RequestFaults,
    cut_connection,
    error_response,
    parse_faults,
    simulated_error,
    sleep_ms,
)
from spendgate.simulator.generation import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_OUTPUT_TOKENS,
    MAX_EMBEDDING_DIMENSIONS,
    PromptCache,
    digest,
    embedding_bytes,
    embedding_payload,
    generate,
)

DEFAULT_MODELS = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o1", "o3", "o3-mini",
    "o4-mini", "gpt-4", "gpt-3.5-turbo", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
    "text-embedding-3-large",
)  # fmt: skip
_PROMPT_FIELD = {
    "chat/completions": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "responses": "input",
}
_CAP_FIELDS = {
    "chat/completions": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
}
_ID_PREFIX = {"chat/completions": "chatcmpl-", "completions": "cmpl-", "responses": "resp_"}
_MAX_CHOICES = 128
_MAX_BODY_BYTES = 64 * 1024 * 1024
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Server-wide settings; per-request behaviour comes from the x-sim-* headers."""

    delay_ms: int = 0
    chunk_delay_ms: int = 0
    prompt_cache_entries: int = 10_000
    models: tuple[str, ...] = DEFAULT_MODELS


@dataclass(frozen=True, slots=True)
class _Timing:
    first_byte_ms: int
    delay_ms: int
    chunk_delay_ms: int
    cut_after: int | None


class _Refusal(Exception):
    """Raised with the error reply to send instead of an answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> _Refusal:
    return _Refusal(error_response(400, message, param=param, code=code))


def _positive_int(body: dict[str, Any], field: str, maximum: int | None = None) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad_request(f"Invalid '{field}': expected an integer of at least 1.", field, "invalid_value")
    if maximum is not None and value > maximum:
        raise _bad_request(f"Invalid '{field}': expected at most {maximum}.", field, "invalid_value")
    return value


def _output_cap(body: dict[str, Any], endpoint: str) -> int | None:
    for field in _CAP_FIELDS[endpoint]:
        cap = _positive_int(body, field)
        if cap is not None:
            return cap
    return None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _bad_request("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object.")
    return body


def _has_bearer_key(request: web.Request) -> bool:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return scheme == "Bearer" and bool(key.strip())


def _embedding_inputs(value: Any) -> list[Any]:
    """One entry per vector to return: a string, or a list of token ids."""
    if isinstance(value, str) or (value and all(isinstance(v, int) for v in value)):
        return [value]
    return list(value)


class _Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.prompt_cache = PromptCache(config.prompt_cache_entries)
        self._ids = itertools.count(1)
        self._id_salt = secrets.token_hex(4)
        self._models_body = orjson.dumps(payloads.models_list(config.models, int(time.time())))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{self._id_salt}{next(self._ids):012x}"

    async def models(self, request: web.Request) -> web.StreamResponse:
        if not _has_bearer_key(request):
            return error_response(401, _NO_KEY)
        return web.Response(body=self._models_body, content_type="application/json")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat/completions")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completions")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "embeddings")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "responses")

    async def _serve(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        try:
            faults = parse_faults(request.headers)
        except ValueError as exc:
            return error_response(400, str(exc))
        delay_ms = self.config.delay_ms if faults.delay_ms is None else faults.delay_ms
        timing = _Timing(faults.first_byte_ms or 0, delay_ms, self.config.chunk_delay_ms, faults.cut_after)
        try:
            answer = await self._answer(request, endpoint, faults)
        except _Refusal as refusal:
            await sleep_ms(timing.first_byte_ms + timing.delay_ms)
            return refusal.response
        if isinstance(answer, dict):
            return await _send_json(request, answer, timing)
        return await _send_stream(request, answer, timing)

    async def _answer(
        self, request: web.Request, endpoint: str, faults: RequestFaults
    ) -> dict[str, Any] | Iterator[bytes]:
        """The JSON body to send, or the SSE events to stream."""
        if not _has_bearer_key(request):
            raise _Refusal(error_response(401, _NO_KEY))
        if faults.status is not None:
            raise _Refusal(simulated_error(faults.status))
        body = await _json_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad_request("you must provide a model parameter", "model")
        field = _PROMPT_FIELD[endpoint]
        if body.get(field) in (None, []):
            raise _bad_request(f"Missing required parameter: '{field}'.", field, "missing_required_parameter")
        try:
            prompt_tokens = count_input_tokens(endpoint, body, model)
        except ValueError as exc:
            raise _bad_request(f"Invalid '{field}': {exc}.", field, "invalid_type") from None
        if endpoint == "embeddings":
            return self._embeddings(body, model, prompt_tokens)

        cap = _output_cap(body, endpoint)
        choices = 1 if endpoint == "responses" else _positive_int(body, "n", _MAX_CHOICES) or 1
        target = DEFAULT_OUTPUT_TOKENS if faults.output_tokens is None else faults.output_tokens
        seed = digest([model, body[field], body.get("instructions")])
        cached = self.prompt_cache.cached_tokens(seed, prompt_tokens)
        outputs = [generate(model, seed + i, target, cap) for i in range(choices)]
        created = int(time.time())
        reply = payloads.Reply(
            self._new_id(_ID_PREFIX[endpoint]), created, model, prompt_tokens, cached, outputs
        )
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if endpoint == "chat/completions":
            if stream:
                return payloads.chat_completion_stream(reply, include_usage)
            return payloads.chat_completion(reply)
        if endpoint == "completions":
            if stream:
                return payloads.text_completion_stream(reply, include_usage)
            return payloads.text_completion(reply)
        if stream:
            return responses_payloads.response_stream(reply, body)
        return responses_payloads.response(reply, body)

    def _embeddings(self, body: dict[str, Any], model: str, prompt_tokens: int) -> dict[str, Any]:
        dimensions = (
            _positive_int(body, "dimensions", MAX_EMBEDDING_DIMENSIONS) or DEFAULT_EMBEDDING_DIMENSIONS
        )
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise _bad_request("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
        vectors = [
            embedding_payload(embedding_bytes(item, dimensions), encoding_format)
            for item in _embedding_inputs(body["input"])
        ]
        return payloads.embeddings(model, vectors, prompt_tokens)


async def _send_json(request: web.Request, payload: dict[str, Any], timing: _Timing) -> web.StreamResponse:
    body = orjson.dumps(payload)
    await sleep_ms(timing.first_byte_ms + timing.delay_ms)
    if timing.cut_after is None:
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    with contextlib.suppress(ConnectionResetError):
        await response.prepare(request)
        await response.write(body[: min(timing.cut_after, len(body) - 1)])
    cut_connection(request)
    return response


async def _send_stream(request: web.Request, events: Iterator[bytes], timing: _Timing) -> web.StreamResponse:
    await sleep_ms(timing.first_byte_ms)
    response = web.StreamResponse(headers=_SSE_HEADERS)
    try:
        await response.prepare(request)
        await sleep_ms(timing.delay_ms)
        for sent, event in enumerate(events):
            if sent == timing.cut_after:
                cut_connection(request)
                return response
            if sent:
                await sleep_ms(timing.chunk_delay_ms)
            await response.write(event)
        await response.write_eof()
    except ConnectionResetError:  # the client went away mid-stream
        pass
    return response


async def _warm_tokenizers(_app: web.Application) -> None:
    await asyncio.gather(*(asyncio.to_thread(get_encoding, n) for n in ("o200k_base", "cl100k_base")))


def create_app(config: SimulatorConfig) -> web.Application:
    """The aiohttp application serving the simulated API under /v1."""
    simulator = _Simulator(config)
    app = web.Application(client_max_size=_MAX_BODY_BYTES)
    app.on_startup.append(_warm_tokenizers)
    app.router.add_get("/v1/models", simulator.models)
    app.router.add_post("/v1/chat/completions", simulator.chat_completions)
    app.router.add_post("/v1/completions", simulator.completions)
    app.router.add_post("/v1/embeddings", simulator.embeddings)
    app.router.add_post("/v1/responses", simulator.responses)
    return app


async def start_simulator(host: str, port: int, config: SimulatorConfig) -> tuple[web.AppRunner, int]:
    """Serve in the running loop; port 0 picks a free port. Returns the runner (call `cleanup()`) and port."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


def base_url(host: str, port: int) -> str:
    """The OpenAI-style base URL, e.g. http://127.0.0.1:18000/v1."""
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


async def _serve_forever(host: str, port: int, config: SimulatorConfig) -> None:
    runner, bound = await start_simulator(host, port, config)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(f"spendgate simulated upstream listening on {base_url(host, bound)}", flush=True)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


def run_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Serve until interrupted (blocking), on uvloop when it is installed."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(_serve_forever(host, port, config))
