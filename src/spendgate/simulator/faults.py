"""Per-request latency and fault injection (the x-sim-* headers) and OpenAI-shaped error replies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web

HEADER_DELAY_MS = "x-sim-delay-ms"
HEADER_FIRST_BYTE_MS = "x-sim-first-byte-ms"
HEADER_STATUS = "x-sim-status"
HEADER_CUT_AFTER = "x-sim-cut-after"
HEADER_OUTPUT_TOKENS = "x-sim-output-tokens"

_MAX_MS = 3_600_000
_MAX_COUNT = 1_000_000
_MAX_OUTPUT_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class RequestFaults:
    """What the x-sim-* headers of one request ask for (absent headers are None)."""

    delay_ms: int | None = None
    first_byte_ms: int | None = None
    status: int | None = None
    cut_after: int | None = None
    output_tokens: int | None = None


def _int_header(headers: Mapping[str, str], name: str, maximum: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"header {name} must be an integer, got {raw!r}") from None
    if not 0 <= value <= maximum:
        raise ValueError(f"header {name} must be between 0 and {maximum}, got {value}")
    return value


def parse_faults(headers: Mapping[str, str]) -> RequestFaults:
    """Read the x-sim-* headers; ValueError names the offending header."""
    status = _int_header(headers, HEADER_STATUS, 599)
    if status is not None and not 400 <= status <= 599:
        raise ValueError(f"header {HEADER_STATUS} must be an HTTP error status (400-599), got {status}")
    return RequestFaults(
        delay_ms=_int_header(headers, HEADER_DELAY_MS, _MAX_MS),
        first_byte_ms=_int_header(headers, HEADER_FIRST_BYTE_MS, _MAX_MS),
        status=status,
        cut_after=_int_header(headers, HEADER_CUT_AFTER, _MAX_COUNT),
        output_tokens=_int_header(headers, HEADER_OUTPUT_TOKENS, _MAX_OUTPUT_TOKENS),
    )


_SIMULATED_TYPE_AND_CODE = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str | None = None,
) -> web.Response:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    if error_type is None:
        error_type = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def simulated_error(status: int) -> web.Response:
    """The reply to `x-sim-status: CODE`."""
    error_type, code = _SIMULATED_TYPE_AND_CODE.get(status, (None, None))
    message = f"Simulated upstream error (HTTP {status}), requested with {HEADER_STATUS}."
    return error_response(status, message, code=code, error_type=error_type)


async def sleep_ms(milliseconds: int) -> None:
    """Sleep, skipping the event-loop round trip when there is nothing to wait for."""
    if milliseconds > 0:
        await asyncio.sleep(milliseconds / 1000)


def cut_connection(request: web.Request) -> None:
    """Close the socket mid-response (buffered bytes are flushed first): the client sees a truncated body."""
    if request.transport is not None:
        request.transport.close()
