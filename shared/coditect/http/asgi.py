"""Plain-ASGI helpers of the relay's streaming proxies (HTTP and WebSocket): request bodies are
forwarded without buffering them, hop-by-hop headers dropped, request ids kept by one rule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]

# RFC 9110 §7.6.1 hop-by-hop headers: they describe one connection and are never forwarded.
HOP_BY_HOP_NAMES = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
)  # fmt: skip
HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP_NAMES)
# The same rule as coditect.http.app: a caller's request id is kept only when it is a sane token.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


class ClientGone(Exception):
    """The client disconnected while its body was being forwarded."""


async def stream_body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk as the server delivers it (raises ClientGone)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def drain(receive: Receive) -> None:
    """Read and drop a request body we will not forward (so the connection stays usable)."""
    more = True
    while more:
        message = await receive()
        more = message["type"] == "http.request" and message.get("more_body", False)


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names a `Connection` header lists: hop-by-hop for this one connection too."""
    return frozenset(
        token.strip().lower().encode()
        for key, value in headers
        if key.lower() == b"connection"
        for token in value.decode("latin-1").split(",")
    )


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-Id when sane, else a new one."""
    for key, value in headers:
        if key.lower() == b"x-request-id" and _SANE_REQUEST_ID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex
