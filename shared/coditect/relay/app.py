"""The relay's ASGI application.

`/workspaces/…` goes to the proxies (raw ASGI: the per-message path stays free of framework
layers); everything else is a small Starlette app: `GET /healthz`, `GET /metrics`, 404 otherwise.
The Starlette lifespan starts the revocation watcher and closes the pools.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coditect.config import Settings, get_settings
from coditect.relay import handshake, metrics
from coditect.relay.grants import GrantSource, StoreGrants
from coditect.relay.httpproxy import proxy_http
from coditect.relay.revocation import Watcher
from coditect.relay.state import RelayConfig, RelayState
from coditect.relay.wsproxy import proxy_websocket

PREFIX = "/workspaces"


class RelayApp:
    """ASGI callable; `state` is reachable for tests and the bench (connection counts)."""

    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.watcher = Watcher(state)
        self._task: asyncio.Task[None] | None = None

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._task = asyncio.create_task(self.watcher.run())
            try:
                yield
            finally:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                await state.aclose()

        async def healthz(request: Request) -> Response:
            return JSONResponse({"status": "ok", "connections": len(state.connections)})

        async def metrics_endpoint(request: Request) -> Response:
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

        routes = [Route("/healthz", healthz), Route("/metrics", metrics_endpoint)]
        self.other = Starlette(routes=routes, lifespan=lifespan)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "lifespan" and (scope["path"] == PREFIX or scope["path"].startswith(PREFIX + "/")):
            if kind == "websocket":
                return await proxy_websocket(scope, receive, send, self.state)
            if kind == "http":
                return await proxy_http(scope, receive, send, self.state)
        await self.other(scope, receive, send)


def create_app(settings: Settings | None = None, grants: GrantSource | None = None) -> RelayApp:
    """The relay over the store named by the settings (or the given `GrantSource`)."""
    settings = settings or get_settings()
    handshake.install()  # refusals made by the WebSocket library get the JSON envelope too
    if grants is None:
        from coditect.store import open_store

        grants = StoreGrants(open_store(settings.store_url), cookie_secure=settings.relay_cookie_secure)
    return RelayApp(RelayState(RelayConfig.of(settings), grants))
