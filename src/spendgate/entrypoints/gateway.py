"""The OpenAI-compatible gateway, `/v1/*`, as a plain ASGI app: the hot path carries no framework
objects. Per call: authenticate, parse, admit (price, allow-list, spend guard), forward, then
settle the usage durably before the response's last byte (or `[DONE]`) goes out."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from spendgate.adapters.upstream.client import (
    AiohttpUpstreamClient,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from spendgate.adapters.upstream.routing import Upstream, UpstreamRouter
from spendgate.adapters.upstream.sse import SseSplitter, event_data
from spendgate.adapters.upstream.usage_extraction import extract_usage, response_text, streamed_text
from spendgate.domain.events import CallStatus
from spendgate.domain.money import format_usd
from spendgate.domain.refusals import RefusalCode, Refused
from spendgate.domain.usage import TokenUsage
from spendgate.entrypoints.http_io import (
    BodyTooLarge,
    ClientGone,
    Message,
    Receive,
    Scope,
    Send,
    header,
    openai_error,
    read_body,
    send_bytes,
)
from spendgate.entrypoints.metrics import GatewayMetrics
from spendgate.services.metering import Admission, KeyDirectory, Metering

log = logging.getLogger(__name__)

ENDPOINTS = {
    "/v1/chat/completions": "chat/completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
}
_REQUIRED_FIELD = {"chat/completions": "messages", "completions": "prompt", "embeddings": "input"}
_INCLUDE_USAGE = {"chat/completions", "completions"}
_STATUS = {
    RefusalCode.INVALID_API_KEY: (401, "invalid_request_error"),
    RefusalCode.INVALID_REQUEST: (400, "invalid_request_error"),
    RefusalCode.MODEL_NOT_FOUND: (404, "invalid_request_error"),
    RefusalCode.BODY_TOO_LARGE: (413, "invalid_request_error"),
    RefusalCode.SPEND_LIMIT_EXCEEDED: (429, "insufficient_quota"),
    RefusalCode.UPSTREAM_ERROR: (502, "upstream_error"),
    RefusalCode.UPSTREAM_TIMEOUT: (504, "upstream_error"),
}
# Client headers a transparent proxy must not pass on: hop-by-hop, credentials, framing.
_NOT_FORWARDED = frozenset(
    {
        "authorization",
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "cookie",
        "accept-encoding",
        "expect",
    }
)

# The openai SDKs raise an APIError when a stream carries an `error` object, so the caller learns
# that the answer is incomplete instead of taking a cut stream for a finished one.
_STREAM_CUT_EVENT = (
    b"data: "
    + openai_error(
        "The upstream's stream broke off before it finished; the answer above is incomplete. "
        "spendgate billed the prompt and the tokens streamed so far. Retry the request.",
        "upstream_error",
        "upstream_error",
    )
    + b"\n\n"
)

InputCounter = Callable[[str, dict[str, Any], str], int]
TextCounter = Callable[[str, str], int]


@dataclass
class GatewayDeps:
    keys: KeyDirectory
    metering: Metering
    router: UpstreamRouter
    upstream: AiohttpUpstreamClient
    metrics: GatewayMetrics
    count_input_tokens: InputCounter
    count_text_tokens: TextCounter
    max_body_bytes: int


@dataclass(frozen=True, slots=True)
class _Call:
    endpoint: str
    payload: dict[str, Any]
    body: bytes
    model: str
    stream: bool
    hide_usage: bool


class Gateway:
    def __init__(self, deps: GatewayDeps) -> None:
        self.deps = deps
        # Request ids: 64 random bits per process, then a counter (uuid4 per call cost 3% of the loop).
        self._id_prefix = "req_" + secrets.token_hex(8)
        self._id_counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = f"{self._id_prefix}{next(self._id_counter):012x}"
        rid = [(b"x-request-id", request_id.encode())]
        started = time.perf_counter()
        endpoint = ENDPOINTS.get(scope["path"], "other")
        status = 500
        started_response = False

        async def tracked_send(message: Message) -> None:
            nonlocal started_response
            started_response = True
            await send(message)

        try:
            status = await self._handle(scope, receive, tracked_send, request_id, rid)
        except Refused as refusal:
            status, error_type = _STATUS[refusal.code]
            code = refusal.code.value
            await send_bytes(
                send, status, openai_error(refusal.message, error_type, code, refusal.param), rid
            )
        except ClientGone:
            status = 499
        except Exception:
            log.exception("request %s failed inside spendgate", request_id)
            if started_response:
                raise
            await send_bytes(
                send,
                500,
                openai_error(
                    f"spendgate failed to process request {request_id}; nothing was billed for it. "
                    "Retry; if it persists, give the operator this request id.",
                    "server_error",
                    "internal_error",
                ),
                rid,
            )
        finally:
            self.deps.metrics.observe_request(endpoint, status, time.perf_counter() - started)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, rid: list[tuple[bytes, bytes]]
    ) -> int:
        path, method = scope["path"], scope["method"]
        if path.rstrip("/") == "/v1/models" and method == "GET":
            key = await self.deps.keys.authenticate(header(scope, b"authorization"))
            return await self._models(send, rid, key.models)
        endpoint = ENDPOINTS.get(path.rstrip("/"))
        if endpoint is None or method != "POST":
            raise Refused(
                RefusalCode.INVALID_REQUEST,
                f"spendgate does not serve {method} {path}. It meters POST /v1/chat/completions, "
                "/v1/completions, /v1/embeddings and /v1/responses, and GET /v1/models.",
            )
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.deps.max_body_bytes:
            raise _too_large(self.deps.max_body_bytes)
        key = await self.deps.keys.authenticate(header(scope, b"authorization"))
        try:
            body = await read_body(receive, self.deps.max_body_bytes)
        except BodyTooLarge:
            raise _too_large(self.deps.max_body_bytes) from None
        call = _parse(endpoint, body)
        upstream = self.deps.router.route(call.model)
        admission = await self.deps.metering.admit(
            request_id, key, call.model, endpoint, upstream.name, call.payload, call.body
        )
        if admission.output_cap is not None:  # so the upstream cannot produce more than was reserved
            field, value = admission.output_cap
            call = replace(call, body=orjson.dumps({**call.payload, field: value}))
        try:
            return await self._forward(scope, receive, send, rid, admission, call, upstream)
        except BaseException:
            await self.deps.metering.abandon(admission)  # a no-op once the call was settled
            raise

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: list[tuple[bytes, bytes]],
        admission: Admission,
        call: _Call,
        upstream: Upstream,
    ) -> int:
        try:
            response = await self.deps.upstream.post(
                upstream, "/" + call.endpoint, call.body, _forwarded(scope)
            )
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            await self.deps.metering.settle(admission, None, CallStatus.UPSTREAM_ERROR, streamed=call.stream)
            raise _upstream_refusal(exc) from exc
        if response.status >= 300:
            return await self._upstream_failed(send, rid, admission, call, response)
        if call.stream and response.content_type.startswith("text/event-stream"):
            await _StreamRelay(self.deps, admission, call, response, send, receive, rid).run()
            return 200
        return await self._complete(send, rid, admission, call, response)

    async def _complete(
        self,
        send: Send,
        rid: list[tuple[bytes, bytes]],
        admission: Admission,
        call: _Call,
        response: UpstreamResponse,
    ) -> int:
        try:
            raw = await response.read()
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            await self.deps.metering.settle(admission, None, CallStatus.UPSTREAM_ERROR, streamed=False)
            raise _upstream_refusal(exc) from exc
        parsed = _loads(raw)
        usage = extract_usage(call.endpoint, parsed)
        estimated = usage is None
        if usage is None:  # an upstream that reports no usage is billed by spendgate's own count
            usage = _estimate(self.deps, call, response_text(call.endpoint, parsed))
        event = await self.deps.metering.settle(
            admission, usage, CallStatus.OK, streamed=False, estimated=estimated
        )
        self.deps.metrics.observe_cost(event.model, event.cost_nanos)
        headers = [*rid, (b"x-spendgate-cost-usd", format_usd(event.cost_nanos).encode())]
        await send_bytes(
            send, response.status, raw, headers, response.content_type.encode() or b"application/json"
        )
        return response.status

    async def _upstream_failed(
        self,
        send: Send,
        rid: list[tuple[bytes, bytes]],
        admission: Admission,
        call: _Call,
        response: UpstreamResponse,
    ) -> int:
        """The upstream refused or failed: bill only what it reported, pass client errors on as they are,
        and turn server errors into 502."""
        try:
            raw = await response.read()
        except (UpstreamTimeout, UpstreamUnavailable):
            raw = b""
        usage = extract_usage(call.endpoint, _loads(raw))
        event = await self.deps.metering.settle(
            admission, usage, CallStatus.UPSTREAM_ERROR, streamed=call.stream
        )
        headers = [*rid, (b"x-spendgate-cost-usd", format_usd(event.cost_nanos).encode())]
        if response.status < 500 and response.status not in (401, 403):
            await send_bytes(
                send, response.status, raw, headers, response.content_type.encode() or b"application/json"
            )
            return response.status
        if response.status in (401, 403):  # spendgate's own upstream credentials, not the caller's key
            advice = "The operator must check spendgate's upstream API key."
        else:
            advice = "Nothing was billed beyond what it reported. Retry shortly."
        body = openai_error(
            f"The upstream ({admission.upstream}) failed with HTTP {response.status}: "
            f"{_upstream_message(raw)} {advice}",
            "upstream_error",
            "upstream_error",
        )
        await send_bytes(send, 502, body, headers)
        return 502

    async def _models(
        self, send: Send, rid: list[tuple[bytes, bytes]], allowed: tuple[str, ...] | None
    ) -> int:
        """The default upstream's model list; for a key limited to some models, only those."""
        try:
            response = await self.deps.upstream.get(self.deps.router.default, "/models")
            raw = await response.read()
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            raise _upstream_refusal(exc) from exc
        listing = _loads(raw)
        if allowed is not None and response.status == 200 and isinstance(listing, dict):
            models = listing.get("data")
            if isinstance(models, list):
                listing["data"] = [m for m in models if isinstance(m, dict) and m.get("id") in allowed]
                raw = orjson.dumps(listing)
        await send_bytes(send, response.status, raw, rid)
        return response.status


class _StreamRelay:
    """Passes a server-sent event stream through event by event. The event that carries the final
    usage is held until the usage is committed; so is `[DONE]`. If the stream ends early (the client
    left, or the upstream broke off), the call is billed from the prompt and what was streamed."""

    def __init__(
        self,
        deps: GatewayDeps,
        admission: Admission,
        call: _Call,
        response: UpstreamResponse,
        send: Send,
        receive: Receive,
        rid: list[tuple[bytes, bytes]],
    ) -> None:
        self.deps, self.admission, self.call, self.response = deps, admission, call, response
        self.send, self.receive, self.rid = send, receive, rid
        self.settled = False
        self.client_gone = False
        self.streamed: list[bytes] = []

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch_disconnect())
        try:
            await self.send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                        *self.rid,
                    ],
                }
            )
            try:
                await self._relay()
            except (UpstreamTimeout, UpstreamUnavailable) as exc:
                log.info("stream %s ended early: %s", self.admission.request_id, exc)
            if not self.settled:
                status = CallStatus.CLIENT_DISCONNECTED if self.client_gone else CallStatus.UPSTREAM_CUT
                await self._settle_estimated(status)
                if not self.client_gone:
                    await self._send(_STREAM_CUT_EVENT)
            if not self.client_gone:
                await self.send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            self.response.release()

    async def _relay(self) -> None:
        splitter = SseSplitter()
        async for chunk in self.response.chunks():
            await self._pass_on(splitter.feed(chunk))
        rest = splitter.rest()
        if rest.strip():
            await self._pass_on([rest])

    async def _pass_on(self, events: list[bytes]) -> None:
        """Ordinary events go straight out, together; `[DONE]` and the event that carries the usage
        wait for the commit. Until then every event is kept for a possible estimate."""
        plain: list[bytes] = []
        for event in events:
            if not self.settled and (b"[DONE]" in event or b'"usage":{' in event or b'"usage": {' in event):
                if plain:
                    await self._send(b"".join(plain))
                    plain = []
                await self._final_or_plain(event)
            else:
                if not self.settled:
                    self.streamed.append(event)
                plain.append(event)
        if plain:
            await self._send(b"".join(plain))

    async def _final_or_plain(self, event: bytes) -> None:
        data = event_data(event)
        if data == b"[DONE]":
            await self._settle_estimated(CallStatus.OK)
            await self._send(event)
            return
        parsed = _loads(data)
        final = (
            parsed.get("response")
            if self.call.endpoint == "responses" and isinstance(parsed, dict)
            else parsed
        )
        usage = extract_usage(self.call.endpoint, final)
        if usage is None:
            self.streamed.append(event)
            await self._send(event)
            return
        record = await self.deps.metering.settle(self.admission, usage, CallStatus.OK, streamed=True)
        self.deps.metrics.observe_cost(record.model, record.cost_nanos)
        self.settled = True
        if self.call.hide_usage and isinstance(parsed, dict) and not parsed.get("choices"):
            return  # the client did not ask for the usage chunk; spendgate did
        await self._send(event)

    async def _send(self, body: bytes) -> None:
        if self.client_gone:
            raise UpstreamUnavailable("client disconnected")
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _settle_estimated(self, status: CallStatus) -> None:
        events = [_loads(event_data(event)) for event in self.streamed]
        usage = _estimate(self.deps, self.call, streamed_text(self.call.endpoint, events))
        record = await self.deps.metering.settle(self.admission, usage, status, streamed=True, estimated=True)
        self.deps.metrics.observe_cost(record.model, record.cost_nanos)
        self.settled = True

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                self.response.close()  # stops the relay loop; the upstream stops generating
                return


def _estimate(deps: GatewayDeps, call: _Call, output_text: str) -> TokenUsage:
    """spendgate's own count, for calls whose usage the upstream never reported."""
    try:
        input_tokens = deps.count_input_tokens(call.endpoint, call.payload, call.model)
    except ValueError:  # an input shape the counter does not know: count the request's text instead
        input_tokens = deps.count_text_tokens(call.body.decode("utf-8", "replace"), call.model)
    return TokenUsage(
        input_tokens=input_tokens, output_tokens=deps.count_text_tokens(output_text, call.model)
    )


def _parse(endpoint: str, body: bytes) -> _Call:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(
            RefusalCode.INVALID_REQUEST,
            f"The request body is not valid JSON ({exc.msg} at position {exc.pos}). "
            "Send a JSON object with Content-Type: application/json.",
        ) from None
    if not isinstance(payload, dict):
        raise Refused(RefusalCode.INVALID_REQUEST, "The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise Refused(
            RefusalCode.INVALID_REQUEST,
            "You must provide a model parameter (a string such as 'gpt-4o-mini').",
            param="model",
        )
    required = _REQUIRED_FIELD.get(endpoint)
    if required is not None and payload.get(required) in (None, "", []):
        raise Refused(
            RefusalCode.INVALID_REQUEST, f"Missing required parameter: '{required}'.", param=required
        )
    if endpoint == "chat/completions" and not isinstance(payload["messages"], list):
        raise Refused(
            RefusalCode.INVALID_REQUEST, "'messages' must be an array of message objects.", param="messages"
        )
    stream = payload.get("stream") is True
    hide_usage = False
    if stream and endpoint in _INCLUDE_USAGE:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            # Ask the upstream for the final usage chunk; hide it again from this client.
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            body = orjson.dumps(payload)
            hide_usage = True
    return _Call(
        endpoint=endpoint, payload=payload, body=body, model=model, stream=stream, hide_usage=hide_usage
    )


def _forwarded(scope: Scope) -> dict[str, str]:
    forwarded = {}
    for raw_name, value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if name not in _NOT_FORWARDED:
            forwarded[name] = value.decode("latin-1")
    return forwarded


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _upstream_message(raw: bytes) -> str:
    parsed = _loads(raw)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return str(parsed["error"].get("message", ""))[:500]
    return raw[:200].decode("utf-8", "replace")


def _upstream_refusal(exc: Exception) -> Refused:
    if isinstance(exc, UpstreamTimeout):
        return Refused(
            RefusalCode.UPSTREAM_TIMEOUT,
            f"The upstream did not answer in time ({exc}). Nothing was billed. Retry shortly.",
        )
    return Refused(
        RefusalCode.UPSTREAM_ERROR,
        f"The upstream could not be reached ({exc}). Nothing was billed. Retry shortly.",
    )


def _too_large(limit: int) -> Refused:
    return Refused(
        RefusalCode.BODY_TOO_LARGE,
        f"The request body is larger than this gateway's limit of {limit} bytes. "
        "Send a smaller request, or ask the operator to raise --max-body.",
    )
