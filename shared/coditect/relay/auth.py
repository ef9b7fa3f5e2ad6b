"""Who may pass: the Origin allowlist, where credentials are read from, and the refusals.

Order of checks (each before any upgrade, so a refused WebSocket never sees a 101):

1. Path: `/workspaces/<canonical lowercase uuid>[/rest]`, else 404 `not_found`.
2. Origin: when the request carries one, it must equal an entry of `cors_origins` exactly
   (scheme, host and port; no prefix/suffix/substring matching; "null" never passes), else 403
   `origin_not_allowed`. Checked before the credentials are used; a ticket presented with a
   refused Origin is spent all the same (`RelayState.check_origin`: issue 15 item 6). A request
   without Origin passes this step: browsers always send it on WebSockets and cross-site
   requests, and non-browser clients could forge any value anyway; they still need a ticket.
3. Credentials, first match wins: a `coditect.ticket.<t>` subprotocol (WebSocket), `?ticket=<t>`
   (either), then the relay cookie. A ticket is consumed (single use); a cookie is reusable until
   its session ends. Refusals map from `RelayDenied.reason`:

       missing                          401 token_missing
       expired                          401 token_expired
       session_revoked                  401 session_revoked (logout, password change, ...)
       malformed/unknown/reused/gone    401 token_invalid
       other_workspace                  403 forbidden (another workspace, user or tenant)
       workspace_not_ready              403 workspace_not_ready

   401s carry `WWW-Authenticate: Bearer error="invalid_token"` like every API 401.
4. Per-user WebSocket cap (limits.py): 429 `rate_limited` with Retry-After. The ticket is spent
   by then (the user is known only after consuming it); the client asks for a new one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

from coditect.workspaces.tickets import COOKIE_NAME, TICKET_SUBPROTOCOL_PREFIX, RelayDenied

Headers = list[tuple[bytes, bytes]]

# Offered by browser clients that need *a* subprotocol answered (a browser fails a handshake that
# offered protocols and got none back): echoed when the workspace selected none; never forwarded.
RELAY_SUBPROTOCOL = "coditect.relay"

_PATH = re.compile(
    rb"^/workspaces/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(/.*)?$", re.S
)

_REASON_CODES = {
    "missing": "token_missing",
    "expired": "token_expired",
    "session_revoked": "session_revoked",
    "other_workspace": "forbidden",
    "workspace_not_ready": "workspace_not_ready",
}
_MESSAGES = {
    401: "A valid relay ticket or cookie is required.",
    403: "Not allowed.",
    404: "Not found.",
    429: "Too many open connections.",
    502: "The workspace did not answer.",
    503: "The workspace is not reachable.",
}


class Refusal(Exception):
    """Answer with `status`/`code` as the contract's error envelope; `reason` is for logs only."""

    def __init__(self, status: int, code: str, reason: str, *, message: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:  # fmt: skip
        super().__init__(f"{status} {code} ({reason})")
        self.status = status
        self.code = code
        self.reason = reason
        self.message = message or _MESSAGES.get(status, "Refused.")
        self.headers = list(headers)
        if status == 401:
            self.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))

    @classmethod
    def of(cls, denied: RelayDenied) -> Refusal:
        code = _REASON_CODES.get(denied.reason, "token_invalid")
        return cls(denied.status, code, denied.reason)

    def body(self, request_id: str) -> bytes:
        error = {"code": self.code, "message": self.message}
        return json.dumps({"success": False, "error": error, "request_id": request_id}).encode()


@dataclass(frozen=True)
class Target:
    """The parsed relay path: the workspace id and the raw path to request from it."""

    workspace_id: str
    upstream_path: bytes  # "/" + rest, still percent-encoded as received
    prefix: str  # "/workspaces/<id>"


def parse_path(raw_path: bytes) -> Target:
    match = _PATH.match(raw_path)
    if match is None:
        raise Refusal(404, "not_found", "path")
    workspace_id = match.group(1).decode()
    uuid.UUID(workspace_id)  # the pattern guarantees it; cheap belt and braces
    return Target(workspace_id, match.group(2) or b"/", f"/workspaces/{workspace_id}")


def header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def check_origin(headers: Headers, allowed: frozenset[str]) -> None:
    """Exact-match Origin check (see the module docstring); raises a 403 Refusal."""
    origins = [v for k, v in headers if k == b"origin"]
    if not origins:
        return
    if len(origins) > 1 or origins[0].decode("latin-1") not in allowed:
        raise Refusal(403, "origin_not_allowed", "origin", message="This origin may not open the workspace.")


def split_subprotocols(offered: Iterable[str]) -> tuple[str | None, list[str]]:
    """(the ticket from a `coditect.ticket.<t>` subprotocol or None, the other subprotocols)."""
    ticket, others = None, []
    for proto in offered:
        if proto.startswith(TICKET_SUBPROTOCOL_PREFIX):
            ticket = ticket or proto[len(TICKET_SUBPROTOCOL_PREFIX) :]
        else:
            others.append(proto)
    return ticket, others


def split_query(query: bytes) -> tuple[str | None, bytes]:
    """(the `ticket` parameter or None, the query string without any `ticket` parameter)."""
    if b"ticket" not in query:
        return None, query
    kept, ticket = [], None
    for part in query.split(b"&"):
        name = part.split(b"=", 1)[0]
        if name == b"ticket":
            pairs = parse_qsl(part.decode("latin-1"), keep_blank_values=True)
            ticket = ticket or (pairs[0][1] if pairs else "")
        else:
            kept.append(part)
    return ticket, b"&".join(kept)


def relay_cookie(headers: Headers) -> str | None:
    """The relay cookie's value from the Cookie header(s), or None."""
    for key, value in headers:
        if key != b"cookie" or COOKIE_NAME.encode() not in value:
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value.decode("latin-1"))
        except CookieError:
            continue
        if COOKIE_NAME in jar:
            return jar[COOKIE_NAME].value
    return None
