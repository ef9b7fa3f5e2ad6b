"""What the relay forwards to a workspace, and what it passes back.

Removed from requests: hop-by-hop headers (RFC 9110 §7.6.1, plus those named in Connection),
Host (set to the target), credentials (Authorization, Proxy-Authorization, every Cookie),
everything proxy-ish a client could forge (Forwarded, X-Forwarded-*, X-Real-IP), and for
WebSockets the handshake headers the upstream client makes anew. Added by the relay only: Host,
X-Forwarded-For/-Proto/-Host (from server configuration and the socket peer), X-Forwarded-Prefix
(`/workspaces/<id>`), X-Request-Id.

Removed from responses: hop-by-hop headers and EVERY Set-Cookie. Cookies do not cross the relay in
either direction (issue 15 item 7, docs/security.md): workspaces are served on the API's origin,
so a cookie a workspace sets would be a cookie of the API's origin (and the client's cookies for
that origin — the relay cookie, the console's — are none of the workspace's business). Workspace
programs keep their state in headers, URLs or storage instead. Serving each workspace from its
own origin would be the stronger isolation; it needs per-workspace hostnames at the front door.
Added to responses: `frame_ancestors(...)` (only the console's origins may frame a workspace UI).
"""

from __future__ import annotations

from dataclasses import dataclass

from coditect.http.asgi import HOP_BY_HOP, connection_tokens
from coditect.http.client_ip import client_ip as forwarded_client_ip
from coditect.relay.auth import Headers

_DROP = frozenset(
    {b"host", b"authorization", b"cookie", b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
     b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix", b"x-forwarded-server",
     b"x-real-ip", b"x-request-id", b"x-envoy-external-address"}
)  # fmt: skip
WS_HANDSHAKE = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
     b"sec-websocket-protocol", b"sec-websocket-accept", b"content-length"}
)  # fmt: skip


@dataclass(frozen=True)
class Forwarding:
    """Server-side facts for X-Forwarded-*: the public scheme and host (from configuration)."""

    proto: str  # "https" | "http"
    host: str  # public host[:port]
    trusted_hops: int  # proxies in front of the relay whose X-Forwarded-For entries we trust
    client_ip_header: str = ""  # the header naming the client address (config.client_ip_header)


def client_ip(headers: Headers, peer: str, trusted_hops: int, header: str = "") -> str:
    """The client address by the platform's one rule (coditect.http.client_ip)."""
    values = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
    wanted = header.lower().encode("latin-1")
    named = [v.decode("latin-1") for k, v in headers if k == wanted] if header else None
    return forwarded_client_ip(peer, values, trusted_hops, named)


def upstream_request_headers(
    headers: Headers, *, target_host: str, prefix: str, peer: str, rid: str, fwd: Forwarding, websocket: bool
) -> list[tuple[bytes, bytes]]:
    named = connection_tokens(headers)
    drop = HOP_BY_HOP | _DROP | named | (WS_HANDSHAKE if websocket else frozenset())
    out: list[tuple[bytes, bytes]] = []
    for key, value in headers:
        if key in drop:
            continue
        out.append((key, value))
    if not websocket:
        out.append((b"host", target_host.encode()))  # the websockets client sets Host itself
    out.append(
        (
            b"x-forwarded-for",
            client_ip(headers, peer, fwd.trusted_hops, fwd.client_ip_header).encode("latin-1"),
        )
    )
    out.append((b"x-forwarded-proto", fwd.proto.encode()))
    out.append((b"x-forwarded-host", fwd.host.encode()))
    out.append((b"x-forwarded-prefix", prefix.encode()))
    out.append((b"x-request-id", rid.encode()))
    return out


# On the relay's own answers (refusals, redirects): not framable, not sniffable, not cached.
REFUSAL_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)


def frame_ancestors(origins: frozenset[str]) -> tuple[bytes, bytes]:
    """A CSP that lets only `origins` (the console's, `cors_origins`) frame a workspace answer.

    Sent in addition to any CSP of the workspace (browsers enforce every policy present)."""
    allowed = " ".join(sorted(o for o in origins if o != "null")) or "'none'"
    return (b"content-security-policy", f"frame-ancestors {allowed}".encode("latin-1"))


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = connection_tokens(raw)
    out = []
    for key, value in raw:
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in named or lower == b"set-cookie":
            continue
        out.append((lower, value))
    return out
