"""The local gateway: an ASGI reverse proxy in front of every function (the ingress's stand-in).

HTTP: the route table picks the function; the request body is streamed to it chunk by chunk
(uploads up to the 100 MiB file limit never sit in memory whole) and the answer is streamed back
with its status and headers. WebSocket (relay paths only): the upstream handshake is made first,
so a refusal (401/403 from the relay) reaches the client as that HTTP status, then frames are
pumped both ways. Unknown paths and wrong methods get the contract's 404/405 envelopes here, as the
function itself would answer them; a function that is down (skipped, restarting) answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from coditect.devstack.routing import RouteTable
from coditect.errors import ApiError, NotFound, ServiceUnavailable
from coditect.http import envelope
from coditect.http.asgi import HOP_BY_HOP_NAMES, ClientGone, drain, request_id, stream_body

log = logging.getLogger("coditect.devstack.gateway")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any  # Callable[[], Awaitable[Message]]
Send = Any  # Callable[[Message], Awaitable[None]]

HOP_BY_HOP = HOP_BY_HOP_NAMES
# Made anew by the websockets client for the upstream handshake.
WS_HANDSHAKE = frozenset(
    {"host", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
     "sec-websocket-protocol", "user-agent"}
)  # fmt: skip


class BadGateway(ApiError):
    status = 502
    default_code = "bad_gateway"
    default_message = "The function answered with something that is not HTTP."


def forward_headers(scope: Scope, rid: str, drop: frozenset[str] = HOP_BY_HOP) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop ones, with X-Request-Id and X-Forwarded-* set."""
    raw = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
    named_in_connection = {
        token.strip().lower() for n, v in raw if n.lower() == "connection" for token in v.split(",")
    }
    skip = drop | named_in_connection | {"x-request-id", "x-forwarded-proto", "x-forwarded-host"}
    out = [(n, v) for n, v in raw if n.lower() not in skip]
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    prior = ", ".join(v for n, v in raw if n.lower() == "x-forwarded-for")
    out = [(n, v) for n, v in out if n.lower() != "x-forwarded-for"]
    out.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
    out.append(("X-Forwarded-Proto", "https" if scope.get("scheme") in ("https", "wss") else "http"))
    host = next((v for n, v in raw if n.lower() == "host"), None)
    if host:
        out.append(("X-Forwarded-Host", host))
    out.append(("X-Request-Id", rid))
    return out


def error_message(exc: ApiError, rid: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The contract's error envelope (rendered by coditect.http.envelope) as an ASGI answer."""
    response = envelope.error_response(exc, rid)
    headers = dict(response.headers)
    headers.update(envelope.API_HEADERS)
    headers["X-Request-Id"] = rid
    body = response.get_data()
    headers["Content-Length"] = str(len(body))
    return exc.status, [(k.lower().encode(), v.encode()) for k, v in headers.items()], body


class Gateway:
    """ASGI app. `upstreams` maps a function name to its base URL (None: not running here)."""

    def __init__(self, table: RouteTable, upstreams: Mapping[str, str | None]) -> None:
        self.table = table
        self.upstreams = dict(upstreams)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No read timeout: downloads and long polls may take as long as they take.
            timeout = httpx.Timeout(None, connect=5.0)
            # Idle connections are dropped after 1 s, before gunicorn's 2 s keep-alive closes them
            # from its side: reusing one the function is closing just then answered 502.
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=1.0)
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send, self.aclose)

    def upstream(self, scope: Scope) -> str:
        """The base URL of the function for this request; raises the 404/405/503 to answer."""
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in scope["headers"]}
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        name = self.table.match(method, scope["path"], headers.get("access-control-request-method"))
        base = self.upstreams.get(name)
        if base is None:
            raise ServiceUnavailable(f"The {name!r} function is not running in the local stack.")
        return base

    # -- HTTP --------------------------------------------------------------------------------
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope["headers"])
        try:
            base = self.upstream(scope)
        except ApiError as exc:
            await drain(receive)
            return await _send_error(send, exc, rid)
        target = base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = forward_headers(scope, rid)
        has_body = any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers) or any(
            n == b"transfer-encoding" for n, _ in scope["headers"]
        )
        content = stream_body(receive) if has_body else None
        request = self.client.build_request(scope["method"], target, headers=headers, content=content)
        try:
            upstream = await self.client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return await _send_error(
                send, ServiceUnavailable("The function is starting.", headers={"Retry-After": "1"}), rid
            )
        except ClientGone:
            return None
        except httpx.HTTPError as exc:
            log.warning("gateway: upstream %s failed: %r", target, exc)
            return await _send_error(send, BadGateway(), rid)
        try:
            out = [
                (n.lower(), v)
                for n, v in upstream.headers.raw
                if n.decode("latin-1").lower() not in HOP_BY_HOP
            ]
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:  # the function died mid-answer: the client sees a cut stream
            log.warning("gateway: upstream %s broke off: %r", target, exc)
        finally:
            await upstream.aclose()

    # -- WebSocket ---------------------------------------------------------------------------
    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope["headers"])
        if (await receive())["type"] != "websocket.connect":
            return None
        try:
            base = self.upstream(scope)
            if not self.table.is_relay_path(scope["path"]):
                raise NotFound("WebSocket is only served under /workspaces/.")
        except ApiError as exc:
            return await _deny(scope, send, *error_message(exc, rid))
        url = (
            "ws" + base.removeprefix("http") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        )
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = forward_headers(scope, rid, HOP_BY_HOP | WS_HANDSHAKE)
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=scope.get("subprotocols") or None,
                user_agent_header=dict(headers).get("user-agent"),
                compression=None,
                max_size=None,
                open_timeout=10,
            )
        except InvalidStatus as exc:  # the relay refused the upgrade: pass its answer on
            answer = exc.response
            deny_headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers.raw_items()]
            return await _deny(scope, send, answer.status_code, deny_headers, bytes(answer.body or b""))
        except (OSError, TimeoutError) as exc:
            log.warning("gateway: websocket upstream %s failed: %r", url, exc)
            unavailable = ServiceUnavailable("The relay is starting.", headers={"Retry-After": "1"})
            return await _deny(scope, send, *error_message(unavailable, rid))
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _pump(receive, send, upstream)


async def _send_error(send: Send, exc: ApiError, rid: str) -> None:
    status, headers, body = error_message(exc, rid)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _deny(
    scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Refuse a WebSocket handshake with an HTTP answer when the server supports it (uvicorn does)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    keep = [(n, v) for n, v in headers if n.decode().lower() not in HOP_BY_HOP | {"content-length"}]
    await send({"type": "websocket.http.response.start", "status": status, "headers": keep})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


async def _pump(receive: Receive, send: Send, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; the close code travels to the other side."""

    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code", 1000) or 1000)
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def upstream_to_client() -> None:
        try:
            async for frame in upstream:
                key = "text" if isinstance(frame, str) else "bytes"
                await send({"type": "websocket.send", key: frame})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""})

    tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()


async def _lifespan(receive: Receive, send: Send, on_shutdown: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
