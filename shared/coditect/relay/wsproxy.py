"""WebSocket through the relay.

Handshake: path, Origin and credentials are checked and the workspace's own handshake is made
BEFORE the client's is accepted, so every refusal is a plain HTTP answer (401/403/429/502; the
ASGI `websocket.http.response` extension, which uvicorn implements) and never a 101.

Subprotocols: `coditect.ticket.<t>` and `coditect.relay` are never forwarded; the others are
offered to the workspace. The client gets back the workspace's choice, else `coditect.relay`
when it offered that (browsers fail a handshake that offered protocols and got none back), else
nothing. The ticket is never echoed.

Frames, fast path (uvicorn's websockets-sansio server, what production and the local stack run):
after the 101 the relay takes the client's socket over from uvicorn and a `wsraw.Pair` forwards
frames between it and a raw connection to the workspace, parsing headers only (limits, close
codes, keepalive, revocation and backpressure as described in wsraw.py). Relying on uvicorn's
protocol object is deliberate (it is what makes the relay as fast as a byte pipe) and guarded: any
other server, or a client that spoke before the 101, never reaches it.

Frames, portable path (any other ASGI server): one task per direction, each awaiting the other
side's send before reading the next message, so at most one message per direction is in the relay's hands, plus the websockets
client's bounded receive queue (`relay_max_queue`) and uvicorn's one-message read buffer: a slow
reader stalls the writer instead of growing memory. A message above `relay_max_message_size`
closes the client with 1009 (uvicorn's --ws-max-size should equal it, so oversized frames are
refused while being read). Close codes travel across; revocation closes with 4401, idleness
with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from coditect.http.asgi import request_id
from coditect.relay import metrics
from coditect.relay.auth import (
    RELAY_SUBPROTOCOL,
    Refusal,
    Target,
    parse_path,
    relay_cookie,
    split_query,
    split_subprotocols,
)
from coditect.relay.headers import REFUSAL_HEADERS, upstream_request_headers
from coditect.relay.limits import Live
from coditect.relay.revocation import flush_bytes
from coditect.relay.state import RelayState
from coditect.relay.wsraw import Pair, UpstreamRefused, open_upstream

log = logging.getLogger("coditect.relay")
Scope = dict[str, Any]
TOO_BIG = 1009


async def deny(scope: Scope, send: Any, refusal: Refusal, rid: str) -> None:
    """Refuse the handshake with an HTTP answer (no 101 is ever sent)."""
    metrics.REFUSED.labels(status=str(refusal.status)).inc()
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})  # servers answer 403 before accept
        return
    body = refusal.body(rid)
    headers = [(b"content-type", b"application/json"), (b"x-request-id", rid.encode()), *REFUSAL_HEADERS]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers]
    await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def _sendable(code: int | None) -> int:
    """A close code the relay may send: 1005/1006/1015 are reserved for reporting, not sending."""
    if code is None or code == 1005:
        return 1000
    if (
        code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
        or 3000 <= code < 5000
    ):
        return code
    return 1011  # 1006/1015/unknown: the workspace side failed


async def proxy_websocket(scope: Scope, receive: Any, send: Any, state: RelayState) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    headers = scope["headers"]
    rid = request_id(headers)
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    config = state.config
    try:
        target = parse_path(raw_path)
        sub_ticket, offered = split_subprotocols(scope.get("subprotocols") or ())
        query_ticket, query = split_query(scope.get("query_string", b""))
        ticket = sub_ticket if sub_ticket is not None else query_ticket
        await state.check_origin(headers, target.workspace_id, ticket)
        cookie = relay_cookie(headers) if ticket is None else None
        grant = await state.authorize(target.workspace_id, ticket, cookie)
        live = state.connections.admit(grant)
    except Refusal as refusal:
        return await deny(scope, send, refusal, rid)
    server = _takeover_target(receive)
    if server is not None:
        return await _relay_frames(scope, send, state, live, target, query, offered, rid, server)
    try:
        upstream = await _connect(
            scope, state, live, target.upstream_path, query, offered, rid, target.prefix
        )
    except Refusal as refusal:
        state.connections.release(live)
        return await deny(scope, send, refusal, rid)
    metrics.CONNECTIONS.inc()
    try:
        chosen = upstream.subprotocol or (RELAY_SUBPROTOCOL if RELAY_SUBPROTOCOL in offered else None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        await _pump(receive, send, upstream, live, config.max_message_size)
    finally:
        state.connections.release(live)
        metrics.CONNECTIONS.dec()
        flush_bytes(live)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(upstream.close(1001 if live.close_code else 1000), 5)


def _takeover_target(receive: Any) -> Any | None:
    """uvicorn's websockets-sansio connection behind `receive`, whose socket the relay can take
    over after the 101 (the fast path); None for any other server (the message pump is used)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return None
    server = getattr(receive, "__self__", None)
    return server if type(server) is WebSocketsSansIOProtocol else None


def _upstream_target(state: RelayState, live: Live, path: bytes, query: bytes) -> tuple[str, str]:
    endpoint = live.grant.endpoint
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    target = path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    return f"{host}:{endpoint.port}", target


def _refusal(exc: UpstreamRefused | None, live: Live) -> Refusal:
    status = exc.status if exc is not None else None
    if status is None:
        log.warning("relay: workspace %s unreachable", live.grant.workspace_id)
        return Refusal(502, "bad_gateway", "upstream")
    log.info("relay: workspace %s refused the upgrade with %d", live.grant.workspace_id, status)
    code = "not_found" if status == 404 else "bad_gateway"
    return Refusal(status if 400 <= status < 600 else 502, code, "upstream_status")


async def _relay_frames(
    scope: Scope, send: Any, state: RelayState, live: Live, target: Target, query: bytes,
    offered: list[str], rid: str, server: Any,
) -> None:  # fmt: skip
    """The fast path: both sockets owned by a `Pair` that forwards frames (wsraw.py)."""
    config = state.config
    netloc, path = _upstream_target(state, live, target.upstream_path, query)
    client = scope.get("client")
    forwarded = upstream_request_headers(
        scope["headers"], target_host=netloc, prefix=target.prefix,
        peer=client[0] if client else "unknown", rid=rid, fwd=config.forwarding, websocket=True,
    )  # fmt: skip
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in forwarded]
    pair = Pair(live, config.max_message_size, config.ping_interval, config.ping_interval)
    endpoint = live.grant.endpoint
    try:
        chosen = await open_upstream(pair, endpoint.host, endpoint.port, path, headers,
                                     [p for p in offered if p != RELAY_SUBPROTOCOL], config.connect_timeout)  # fmt: skip
    except (UpstreamRefused, OSError, TimeoutError) as exc:
        state.connections.release(live)
        return await deny(scope, send, _refusal(exc if isinstance(exc, UpstreamRefused) else None, live), rid)
    metrics.CONNECTIONS.inc()
    try:
        chosen = chosen or (RELAY_SUBPROTOCOL if RELAY_SUBPROTOCOL in offered else None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        transport = server.transport
        if transport.is_closing() or server.disconnected:
            return None
        if pair.done.done():  # the workspace hung up during the accept
            return await _close_client(send, 1011, "")
        if not server.queue.empty() or server.conn.reader.buffer:
            # The client sent frames before it saw the 101 (RFC 6455 forbids it): not relayable.
            return await _close_client(send, 1002, "protocol error")
        server.stop_keepalive()  # the pair pings the client from now on
        pair.start(transport, server.connection_lost)
        await pair.done
    finally:
        pair.abort()
        state.connections.release(live)
        metrics.CONNECTIONS.dec()
        flush_bytes(live)


async def _connect(
    scope: Scope,
    state: RelayState,
    live: Live,
    path: bytes,
    query: bytes,
    offered: list[str],
    rid: str,
    prefix: str,
) -> ClientConnection:
    config = state.config
    endpoint = live.grant.endpoint
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    url = f"ws://{host}:{endpoint.port}{path.decode('latin-1')}" + (
        f"?{query.decode('latin-1')}" if query else ""
    )
    client = scope.get("client")
    forwarded = upstream_request_headers(
        scope["headers"], target_host=f"{host}:{endpoint.port}", prefix=prefix,
        peer=client[0] if client else "unknown", rid=rid, fwd=config.forwarding, websocket=True,
    )  # fmt: skip
    protocols = [p for p in offered if p != RELAY_SUBPROTOCOL]
    try:
        return await connect(
            url,
            additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in forwarded],
            subprotocols=protocols or None,  # type: ignore[arg-type]
            user_agent_header=None,  # the client's own User-Agent is among the forwarded headers
            compression=None,  # loopback/cluster network: compression would only cost CPU
            max_size=config.max_message_size,
            max_queue=config.max_queue,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_interval,
            open_timeout=config.connect_timeout,
            proxy=None,
        )
    except InvalidStatus as exc:  # the workspace refused the upgrade: tell the client its status
        status = exc.response.status_code
        log.info("relay: workspace %s refused the upgrade with %d", live.grant.workspace_id, status)
        code = "not_found" if status == 404 else "bad_gateway"
        raise Refusal(status if 400 <= status < 600 else 502, code, "upstream_status") from None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        log.warning("relay: workspace %s unreachable: %s", live.grant.workspace_id, type(exc).__name__)
        raise Refusal(502, "bad_gateway", "upstream") from None


class _TooBig(Exception):
    pass


async def _client_to_upstream(receive: Any, upstream: ClientConnection, live: Live, limit: int) -> int:
    """Forward the client's messages until it disconnects (its close code); _TooBig past `limit`."""
    loop = asyncio.get_running_loop()
    quarter = limit // 4
    upstream_send = upstream.send
    while True:
        message = await receive()
        data = message.get("bytes")
        if data is None:
            data = message.get("text")
            if data is None:  # websocket.disconnect
                return int(message.get("code") or 1000)
            size = len(data)
            if size > quarter and len(data.encode()) > limit:  # encode only when it could matter
                raise _TooBig()
        else:
            size = len(data)
            if size > limit:
                raise _TooBig()
        live.bytes_in += size
        live.last_activity = loop.time()
        await upstream_send(data)


async def _upstream_to_client(send: Any, upstream: ClientConnection, live: Live) -> int:
    """Forward the workspace's messages until its connection closes (the close code)."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await upstream.recv()
            if type(data) is str:
                await send({"type": "websocket.send", "text": data})
            else:
                await send({"type": "websocket.send", "bytes": data})
            live.bytes_out += len(data)
            live.last_activity = loop.time()
    except ConnectionClosed as closed:
        if closed.rcvd is not None:
            return closed.rcvd.code
        return closed.sent.code if closed.sent is not None else 1006


async def _pump(receive: Any, send: Any, upstream: ClientConnection, live: Live, limit: int) -> None:
    inbound = asyncio.ensure_future(_client_to_upstream(receive, upstream, live, limit))
    outbound = asyncio.ensure_future(_upstream_to_client(send, upstream, live))

    def cancel_both() -> None:
        inbound.cancel()
        outbound.cancel()

    live.on_close(cancel_both)
    if live.close_code is not None:  # revoked while the handshake was in flight
        cancel_both()
    try:
        done, _ = await asyncio.wait((inbound, outbound), return_when=asyncio.FIRST_COMPLETED)
    finally:
        cancel_both()
    await asyncio.gather(inbound, outbound, return_exceptions=True)
    await _end(
        send, upstream, live, inbound if inbound in done else None, outbound if outbound in done else None
    )


async def _end(
    send: Any,
    upstream: ClientConnection,
    live: Live,
    inbound: asyncio.Future[int] | None,
    outbound: asyncio.Future[int] | None,
) -> None:
    """Close what is left once one direction ended (`inbound`/`outbound`: the one(s) that did)."""
    if live.close_code is not None:  # revoked or idle (the watcher cancelled both directions)
        return await _close_client(send, live.close_code, live.close_reason)
    if inbound is not None and not inbound.cancelled():
        exc = inbound.exception()
        if isinstance(exc, _TooBig):
            metrics.CLOSED.labels(cause="too_big").inc()
            return await _close_client(send, TOO_BIG, "message too big")
        if exc is None:  # the client closed: pass its code on to the workspace
            with contextlib.suppress(Exception):
                await asyncio.wait_for(upstream.close(_sendable(inbound.result())), 5)
        return None  # else the client connection failed (ClientDisconnected): nothing left to tell it
    code = (
        outbound.result()
        if (outbound is not None and not outbound.cancelled() and outbound.exception() is None)
        else 1011
    )
    await _close_client(send, _sendable(code), "")


async def _close_client(send: Any, code: int, reason: str) -> None:
    # Bounded: a client that stopped reading must not hold the handler (uvicorn then drops it).
    with contextlib.suppress(Exception):
        await asyncio.wait_for(send({"type": "websocket.close", "code": code, "reason": reason}), 5)
