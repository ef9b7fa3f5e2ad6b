"""HTTP through the relay: authenticate, then stream the request and the answer (no buffering).

A first visit with `?ticket=` consumes the ticket and sets the relay cookie. For GET and HEAD the
answer is a 303 to the same URL without the ticket (so it leaves the address bar, the history and
any Referer the workspace's page would send); other methods are forwarded at once, with the
ticket removed from the query and the cookie set on the workspace's answer.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from coditect.http.asgi import ClientGone, drain, request_id, stream_body
from coditect.relay.auth import Refusal, parse_path, relay_cookie, split_query
from coditect.relay.headers import (
    REFUSAL_HEADERS,
    frame_ancestors,
    response_headers,
    upstream_request_headers,
)
from coditect.relay.state import RelayState

log = logging.getLogger("coditect.relay")
Scope = dict[str, Any]


async def refuse(send: Any, refusal: Refusal, rid: str) -> None:
    body = refusal.body(rid)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", rid.encode()), *REFUSAL_HEADERS]  # fmt: skip
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def proxy_http(scope: Scope, receive: Any, send: Any, state: RelayState) -> None:
    headers = scope["headers"]
    rid = request_id(headers)
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    try:
        target = parse_path(raw_path)
        ticket, query = split_query(scope.get("query_string", b""))
        await state.check_origin(headers, target.workspace_id, ticket)
        grant = await state.authorize(
            target.workspace_id, ticket, None if ticket is not None else relay_cookie(headers)
        )
    except Refusal as refusal:
        await drain(receive)
        return await refuse(send, refusal, rid)

    extra: list[tuple[bytes, bytes]] = [(b"x-request-id", rid.encode())]
    if ticket is not None:
        cookie = await state.run(state.grants.open_cookie, grant)
        extra.append((b"set-cookie", cookie.header().encode()))
        if scope["method"] in ("GET", "HEAD"):
            location = raw_path + (b"?" + query if query else b"")
            await drain(receive)
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location), (b"content-length", b"0"), *REFUSAL_HEADERS, *extra]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

    state.touch(grant)
    endpoint = grant.endpoint
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    authority = f"{host}:{endpoint.port}"
    url = f"http://{authority}{target.upstream_path.decode('latin-1')}" + (
        f"?{query.decode('latin-1')}" if query else ""
    )
    client = scope.get("client")
    forwarded = upstream_request_headers(
        headers, target_host=authority, prefix=target.prefix, peer=client[0] if client else "unknown",
        rid=rid, fwd=state.config.forwarding, websocket=False,
    )  # fmt: skip
    has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in headers)
    request = httpx.Request(
        scope["method"], url, headers=forwarded, content=stream_body(receive) if has_body else None
    )
    pool = state.pool(endpoint)
    try:
        upstream = await pool.send(request, stream=True)
    except ClientGone:
        return None
    except httpx.HTTPError as exc:
        log.warning("relay: workspace %s did not answer: %s", target.workspace_id, type(exc).__name__)
        return await refuse(send, Refusal(502, "bad_gateway", "upstream"), rid)
    try:
        out = response_headers(upstream.headers.raw) + extra
        out.append(frame_ancestors(state.config.allowed_origins))
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
        async for chunk in upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except httpx.HTTPError as exc:  # the workspace broke off mid-answer: the client sees a cut stream
        log.warning("relay: workspace %s broke off: %s", target.workspace_id, type(exc).__name__)
    finally:
        await upstream.aclose()
