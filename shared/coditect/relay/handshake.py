"""Handshake refusals made by the WebSocket library itself, answered as the JSON envelope.

uvicorn's `websockets-sansio` protocol validates the upgrade request with `websockets` before the
relay's ASGI code sees it. What `websockets` refuses there — a duplicate `Origin`, a missing or
repeated `Sec-WebSocket-Key`, a wrong version — it answers with `ServerProtocol.reject(status,
text)`: a plain-text body. `install()` makes every such answer the contract's error envelope with
`X-Request-Id` (the caller's when sane) and the relay's refusal headers, by wrapping `reject` on
each connection's `ServerProtocol` as the handshake starts. A duplicate or unlisted Origin is
403 `origin_not_allowed` (as on the relay's own HTTP path); anything else keeps its status with a
code named after it.

The wrap is per instance (no global change to `websockets`), installed once on uvicorn's class by
`create_app`; other WebSocket implementations of uvicorn are left alone (the relay runs
`websockets-sansio`: coditect.registry.relay).
"""

from __future__ import annotations

import functools
import http
import json
from collections.abc import Callable
from typing import Any

from websockets.datastructures import Headers as WsHeaders
from websockets.http11 import Request, Response

from coditect.http.asgi import request_id
from coditect.relay.headers import REFUSAL_HEADERS

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    426: "upgrade_required",
    500: "internal_error",
}


def enveloped(request: Request, status: int, text: str) -> Response:
    """The envelope answer for a handshake `websockets` refused with `status` and `text`."""
    raw = [
        (k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in request.headers.raw_items()
    ]
    rid = request_id(raw)
    code = _CODES.get(status, "bad_request")
    message = "The WebSocket handshake is not valid."
    if "origin" in text.lower():
        status, code, message = 403, "origin_not_allowed", "This origin may not open the workspace."
    elif status >= 500:
        message = "Internal server error."
    body = json.dumps({"success": False, "error": {"code": code, "message": message}, "request_id": rid})
    data = body.encode()
    headers = WsHeaders(
        [
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("X-Request-Id", rid),
            *((k.decode(), v.decode()) for k, v in REFUSAL_HEADERS),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


def _wrap_handle_connect(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def handle_connect(self: Any, event: Request) -> None:
        conn = self.conn
        conn.reject = lambda status, text: enveloped(event, int(status), text)
        original(self, event)

    handle_connect.coditect_enveloped = True  # type: ignore[attr-defined]
    return handle_connect


def install() -> None:
    """Wrap uvicorn's websockets-sansio `handle_connect` (idempotent; no-op without uvicorn)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - the relay extra installs uvicorn
        return
    current = WebSocketsSansIOProtocol.handle_connect
    if not getattr(current, "coditect_enveloped", False):
        WebSocketsSansIOProtocol.handle_connect = _wrap_handle_connect(current)  # type: ignore[method-assign]
