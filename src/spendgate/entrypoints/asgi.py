"""The one ASGI app on one port: the gateway (/v1/*), the admin API (/admin/v1/*), /healthz,
/metrics and the web pages. The lifespan builds the container and tears it down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text

from spendgate.adapters.tokenizer import count_input_tokens, count_text_tokens
from spendgate.bootstrap import Container, build_container
from spendgate.config import Settings
from spendgate.entrypoints.admin_api import create_admin_app
from spendgate.entrypoints.gateway import Gateway, GatewayDeps
from spendgate.entrypoints.http_io import Receive, Scope, Send
from spendgate.entrypoints.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class SpendgateApp:
    def __init__(self, settings: Settings, on_started: Callable[[Container], None] | None = None) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self._on_started = on_started
        self._container: Container | None = None
        self._gateway: Gateway | None = None
        self._web = create_admin_app(self.container)
        self._add_web_routes(self._web)

    def container(self) -> Container:
        if self._container is None:
            raise RuntimeError("spendgate is not started")
        return self._container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/") and self._gateway is not None:
            await self._gateway(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._web(scope, receive, send)

    async def start(self) -> Container:
        container = await build_container(self.settings)
        self._container = container
        self._gateway = Gateway(
            GatewayDeps(
                keys=container.keys,
                metering=container.metering,
                router=container.router,
                upstream=container.upstream_client,
                metrics=self.metrics,
                count_input_tokens=count_input_tokens,
                count_text_tokens=count_text_tokens,
                max_body_bytes=self.settings.max_body_bytes,
            )
        )
        if self._on_started is not None:
            self._on_started(container)
        return container

    async def stop(self) -> None:
        if self._container is not None:
            await self._container.close()
            self._container = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("spendgate failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _add_web_routes(self, web: FastAPI) -> None:
        @web.get("/healthz", include_in_schema=False)
        async def healthz() -> JSONResponse:
            container = self.container()

            def ping() -> None:
                with container.store.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))

            try:
                await asyncio.to_thread(ping)
            except Exception as exc:
                return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
            return JSONResponse({"status": "ok", "database": "ok", "upstream": container.router.default.name})

        @web.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

        @web.get("/", include_in_schema=False)
        async def index() -> HTMLResponse:
            return HTMLResponse(_INDEX)


_INDEX = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>spendgate</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>spendgate</h1>
<p>The gateway is running. Point any OpenAI SDK at <code>/v1</code> with an <code>sg-</code> key.</p>
<ul>
<li><a href="/admin/v1/docs">Admin API</a> (<a href="/admin/v1/openapi.json">OpenAPI</a>)</li>
<li><a href="/healthz">Health</a> and <a href="/metrics">Prometheus metrics</a></li>
</ul>
<p>The Overview dashboard is not built yet; use <code>spendgate usage</code> for usage and cost.</p>
</body></html>"""
