"""A bare pass-through proxy on spendgate's stack (Starlette, uvicorn, uvloop, httptools, aiohttp) with
no metering: the baseline that spendgate's overhead is measured against.

    python bench/bare_proxy.py --port 9000 --upstream http://127.0.0.1:18000/v1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept")
FORWARDED_RESPONSE_HEADERS = ("content-type", "cache-control")


def create_app(upstream: str) -> Starlette:
    base = upstream.rstrip("/")
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        sessions.append(session)
        try:
            yield
        finally:
            await session.close()

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_REQUEST_HEADERS}
        body = await request.body()
        upstream_response = await sessions[0].post(
            f"{base}/{request.path_params['path']}", data=body, headers=headers
        )
        out_headers = {
            k: v for k, v in upstream_response.headers.items() if k.lower() in FORWARDED_RESPONSE_HEADERS
        }
        if upstream_response.content_type != "text/event-stream":
            async with upstream_response:
                content = await upstream_response.read()
            return Response(content, status_code=upstream_response.status, headers=out_headers)

        async def chunks() -> AsyncIterator[bytes]:
            async with upstream_response:
                async for chunk in upstream_response.content.iter_any():
                    yield chunk

        return StreamingResponse(chunks(), status_code=upstream_response.status, headers=out_headers)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/v1/{path:path}", forward, methods=["POST"]), Route("/healthz", healthz)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, help="Upstream base URL, e.g. http://127.0.0.1:18000/v1")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        workers=1,
    )


if __name__ == "__main__":
    main()
