"""The relay's ASGI application.

`/workspaces/…` goes to the proxies (raw ASGI: the per-message path stays free of framework
layers); everything else is a small Starlette app: `GET /healthz`, `GET /metrics`, 404 otherwise.
The Starlette lifespan starts the revocation watcher and closes the pools.

Draining (a rollout, a scale-down, a node drain): `drain()` makes `/healthz` answer 503 so the
readiness probe takes the pod out of its Service, and `close_all()` ends every relayed socket with
1012 "service restart", which tells clients to reconnect (they land on another pod).
coditect.relay.server calls both on SIGTERM, `relay_drain_seconds` apart.
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
SERVICE_RESTART = 1012  # RFC 6455 registry: "Service Restart", the client should reconnect


class RelayApp:
    """ASGI callable; `state` is reachable for tests and the bench (connection counts)."""

    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.watcher = Watcher(state)
        self._task: asyncio.Task[None] | None = None
        self.draining = False

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
            status = "draining" if self.draining else "ok"
            body = {"status": status, "connections": len(state.connections)}
            return JSONResponse(body, status_code=503 if self.draining else 200)

        async def metrics_endpoint(request: Request) -> Response:
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

        routes = [Route("/healthz", healthz), Route("/metrics", metrics_endpoint)]
        self.other = Starlette(routes=routes, lifespan=lifespan)

    def drain(self) -> None:
        """Stop being ready (the readiness probe fails from now on); live sockets stay open."""
        self.draining = True

    def close_all(self, code: int = SERVICE_RESTART, reason: str = "service restart") -> int:
        """Ask every live relayed socket to close with `code`; how many were asked."""
        live = self.state.connections.snapshot()
        for conn in live:
            metrics.CLOSED.labels(cause="drain").inc()
            conn.close(code, reason)
        return len(live)

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
