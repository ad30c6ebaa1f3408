"""The pooled upstream client. aiohttp is the only HTTP client on the hot path: measured on this
machine's kind, a pass-through served ~12x more requests per second with it than with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from spendgate.adapters.upstream.routing import Upstream


class UpstreamUnavailable(Exception):
    """No answer: connection refused or reset, or the stream broke."""


class UpstreamTimeout(Exception):
    """The upstream did not answer in time."""


@dataclass
class UpstreamResponse:
    status: int
    content_type: str
    _response: aiohttp.ClientResponse

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            self._response.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        """Drop the connection (used when the client left mid-stream)."""
        self._response.close()

    def release(self) -> None:
        self._response.release()


class AiohttpUpstreamClient:
    def __init__(
        self, connect_timeout: float = 10.0, read_timeout: float = 600.0, max_connections: int = 1000
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, upstream: Upstream, path: str, body: bytes, extra_headers: dict[str, str]
    ) -> UpstreamResponse:
        return await self._request("POST", upstream, path, body, extra_headers)

    async def get(self, upstream: Upstream, path: str) -> UpstreamResponse:
        return await self._request("GET", upstream, path, None, {})

    async def _request(
        self, method: str, upstream: Upstream, path: str, body: bytes | None, extra_headers: dict[str, str]
    ) -> UpstreamResponse:
        assert self._session is not None, "start() the client first"
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", **extra_headers}
        if upstream.api_key:
            headers["Authorization"] = f"Bearer {upstream.api_key}"
        try:
            response = await self._session.request(
                method, upstream.base_url.rstrip("/") + path, data=body, headers=headers
            )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{upstream.name} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{upstream.name}: {exc or type(exc).__name__}") from exc
        return UpstreamResponse(
            status=response.status, content_type=response.headers.get("Content-Type", ""), _response=response
        )
