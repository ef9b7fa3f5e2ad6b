"""Relay credentials: single-use tickets, relay cookie sessions, grants, revocation, activity.

The relay (its own ASGI app) calls only what is listed here; nothing else of this package::

    consume_ticket(db, ticket, workspace_id, *, now=None) -> RelayGrant          raises RelayDenied
    open_cookie_session(db, grant, *, now=None) -> RelayCookie
    check_cookie(db, token, workspace_id, *, now=None) -> RelayGrant             raises RelayDenied
    close_cookie_session(db, token) -> None
    grant_still_valid(db, grant, *, now=None) -> bool                            one transaction
    record_activity(db, tenant_id, workspace_id, *, now=None) -> bool            throttled
    COOKIE_NAME, TICKET_SUBPROTOCOL_PREFIX

Tickets (`issue_ticket`, POST /api/v5/workspaces/{id}/tickets): 256 bits from `secrets`,
URL-safe base64 (valid in a Sec-WebSocket-Protocol token), stored only as SHA-256 under
`keyspace.TOKEN_DIGESTS` kind "ws_ticket", valid `workspace_ticket_ttl` ≤ 60 s, bound to tenant, user,
login session (sid) and workspace, issued only for a `ready` workspace. `consume_ticket` checks
and spends it in ONE transaction; a spent ticket stays as a tombstone until it expires so a
replay is told apart from garbage (for the logs only). The reconciler sweeps expired entries.

Refusals (`RelayDenied.status`, per the contract "without valid credentials: 401 before any
upgrade; foreign workspace: 403"; `reason` is for logs, never for the client)::

    401  missing, malformed, unknown, expired, reused, session_revoked (login session gone or
         user mismatch), workspace_gone (no such workspace any more)
    403  other_workspace: a genuine, unexpired credential bound to another workspace than the
         path's (also another tenant's). The ticket is spent anyway: one presentation per ticket.
    403  workspace_not_ready: the credential is genuine but its workspace is not `ready`

Relay cookie (HTTP first visit with `?ticket=`): after `consume_ticket`, the relay calls
`open_cookie_session(db, grant)` and sets `RelayCookie.header()` (HttpOnly, SameSite=Strict,
Path=/workspaces/{id}/, Secure when the public base URL is https, Max-Age ≤ the grant's
lifetime). The value is another 256-bit opaque token stored as a digest (kind "ws_relay"), bound
like the ticket, checked by `check_cookie` on every request (same 401/403 split).

Grant lifetime: `RelayGrant.expires` = min(now + workspace_cookie_ttl, the login session's
absolute expiry). `grant_still_valid` reads, in one transaction, identity's live-session marker
(`coditect.identity.repository.read_live`: present exactly while the login session is usable;
logout, password change, refresh-token reuse and user removal clear it) and the workspace's small
state key (must be `ready`); the relay re-checks every open connection's grant this way about once
a second (coditect.relay.revocation).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.config import Settings, get_settings
from coditect.errors import Conflict, NotFound
from coditect.identity import repository as identity
from coditect.identity.context import TenantContext
from coditect.store import Database, Transaction
from coditect.workspaces import lifecycle, repository
from coditect.workspaces.models import TicketOut
from coditect.workspaces.provisioner import Endpoint

TICKET_KIND, COOKIE_KIND = "ws_ticket", "ws_relay"
COOKIE_NAME = "coditect_relay"
TICKET_SUBPROTOCOL_PREFIX = "coditect.ticket."
_TOKEN_BYTES = 32  # 256 bits
_MAX_TOKEN_LENGTH = 128  # a token is 43 characters; anything much longer is junk

Reason = Literal[
    "missing", "malformed", "unknown", "expired", "reused", "session_revoked", "workspace_gone",
    "other_workspace", "workspace_not_ready",
]  # fmt: skip
_FORBIDDEN: frozenset[str] = frozenset({"other_workspace", "workspace_not_ready"})


class RelayDenied(Exception):
    """The relay must refuse: `status` 401 or 403 (before any upgrade); `reason` for logs only."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason
        self.status: int = 403 if reason in _FORBIDDEN else 401


@dataclass(frozen=True)
class RelayGrant:
    """What a valid ticket or cookie entitles: this user's login session to this workspace.

    `endpoint` comes from server state only; `expires` (unix seconds) bounds the grant even
    without revocation (see the module docstring).
    """

    tenant_id: str
    user_id: str
    session_id: str  # the login session (access-token `sid`), not the workspace session
    workspace_id: str
    endpoint: Endpoint
    expires: float


@dataclass(frozen=True)
class RelayCookie:
    name: str
    value: str
    path: str
    max_age: int
    secure: bool

    def header(self) -> str:
        """The Set-Cookie header value."""
        parts = [f"{self.name}={self.value}", f"Path={self.path}", f"Max-Age={self.max_age}", "HttpOnly"]
        parts.append("SameSite=Strict")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def digest(token: str) -> bytes:
    # Plain SHA-256 suffices: tokens carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def _token_key(kind: str, token_digest: bytes) -> bytes:
    return keyspace.TOKEN_DIGESTS.key(kind, token_digest)


def _expiry_key(expires: float, kind: str, token_digest: bytes) -> bytes:
    return keyspace.WORKSPACE_INDEX.key("token_exp", int(expires) + 1, kind, token_digest)


def _well_formed(token: str | None) -> bool:
    return bool(token) and len(token or "") <= _MAX_TOKEN_LENGTH and (token or "").isascii()


def relay_path(workspace_id: str) -> str:
    return f"/workspaces/{workspace_id}/"


# -- issuing (the API side) ----------------------------------------------------------------------
def issue_ticket(
    db: Database,
    ctx: TenantContext,
    workspace_id: str,
    *,
    settings: Settings | None = None,
    now: float | None = None,
) -> TicketOut:
    """A ticket for the caller's own `ready` workspace (404 for others', 409 workspace_not_ready)."""
    settings = settings or get_settings()
    token = secrets.token_urlsafe(_TOKEN_BYTES)  # outside the retry loop: one token per request
    at = _now(now)
    expires = at + settings.workspace_ticket_ttl
    db.transact(_store_ticket, ctx, workspace_id, digest(token), expires)
    base = settings.public_base_url.rstrip("/")
    return TicketOut(
        ticket=token,
        expires_in=settings.workspace_ticket_ttl,
        websocket_url=re.sub(r"^http", "ws", base) + relay_path(workspace_id),  # https → wss
        http_url=base + relay_path(workspace_id),
    )


def _store_ticket(
    tr: Transaction, ctx: TenantContext, workspace_id: str, token_digest: bytes, expires: float
) -> None:
    record = repository.get(tr, ctx.tenant_id, workspace_id)
    if record is None or record.user_id != ctx.user_id:
        raise NotFound()
    if record.status != "ready":
        raise Conflict("The workspace is not ready.", code="workspace_not_ready")
    _put_token(
        tr, TICKET_KIND, token_digest, ctx.tenant_id, ctx.user_id, ctx.session_id, workspace_id, expires
    )


def _put_token(
    tr: Transaction, kind: str, token_digest: bytes, tid: str, uid: str, sid: str, wid: str, expires: float
) -> None:
    value = {"t": tid, "u": uid, "s": sid, "w": wid, "e": expires, "used": False}
    tr.set(_token_key(kind, token_digest), json.dumps(value, separators=(",", ":")).encode())
    tr.set(_expiry_key(expires, kind, token_digest), b"")


# -- validating (the relay side) -----------------------------------------------------------------
def consume_ticket(
    db: Database, ticket: str | None, workspace_id: str, *, now: float | None = None
) -> RelayGrant:
    """Validate and spend `ticket` for `workspace_id` in one transaction, or raise RelayDenied."""
    if not _well_formed(ticket):
        raise RelayDenied("missing" if not ticket else "malformed")
    assert ticket is not None
    outcome = db.transact(_consume, digest(ticket), workspace_id, _now(now))
    if isinstance(outcome, RelayGrant):
        return outcome
    raise RelayDenied(outcome)


def _consume(tr: Transaction, token_digest: bytes, workspace_id: str, now: float) -> RelayGrant | Reason:
    key = _token_key(TICKET_KIND, token_digest)
    raw = tr.get(key)
    if raw is None:
        return "unknown"
    entry = json.loads(raw)
    if entry["used"]:
        return "reused"
    if now >= entry["e"]:
        return "expired"
    # Spent on its first presentation, whatever the outcome below (committed: no exception here).
    tr.set(key, json.dumps({**entry, "used": True}, separators=(",", ":")).encode())
    return _grant(tr, entry, workspace_id, now)


def _grant(tr: Transaction, entry: dict[str, Any], workspace_id: str, now: float) -> RelayGrant | Reason:
    """Check a genuine credential's bindings against the path and live state."""
    if entry["w"] != workspace_id:
        return "other_workspace"
    live = identity.read_live(tr, entry["t"], entry["s"])
    if live is None or live[0] != entry["u"]:
        return "session_revoked"
    record = repository.get(tr, entry["t"], workspace_id)
    if record is None or record.user_id != entry["u"]:
        return "workspace_gone"
    endpoint = lifecycle.endpoint_of(record)
    if endpoint is None:
        return "workspace_not_ready"
    expires = now + get_settings().workspace_cookie_ttl
    session = identity.get_session(tr, entry["t"], entry["s"])
    if session is not None:
        expires = min(expires, session.created_at + get_settings().refresh_absolute_ttl)
    if "exp" in entry:  # a cookie session carries its own bound
        expires = min(expires, float(entry["exp"]))
    return RelayGrant(entry["t"], entry["u"], entry["s"], workspace_id, endpoint, expires)


def open_cookie_session(db: Database, grant: RelayGrant, *, now: float | None = None) -> RelayCookie:
    """A relay cookie bound like `grant`, living until `grant.expires` (for HTTP visits)."""
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    at = _now(now)
    max_age = max(1, int(grant.expires - at))

    def store(tr: Transaction) -> None:
        _put_token(tr, COOKIE_KIND, digest(token), grant.tenant_id, grant.user_id, grant.session_id,
                   grant.workspace_id, grant.expires)  # fmt: skip

    db.transact(store)
    secure = get_settings().public_base_url.startswith("https://")
    return RelayCookie(COOKIE_NAME, token, relay_path(grant.workspace_id), max_age, secure)


def check_cookie(
    db: Database, token: str | None, workspace_id: str, *, now: float | None = None
) -> RelayGrant:
    """The grant of a relay cookie for `workspace_id`, or RelayDenied (the cookie is reusable)."""
    if not _well_formed(token):
        raise RelayDenied("missing" if not token else "malformed")
    assert token is not None
    at = _now(now)

    def check(tr: Transaction) -> RelayGrant | Reason:
        raw = tr.get(_token_key(COOKIE_KIND, digest(token)), snapshot=True)
        if raw is None:
            return "unknown"
        entry = json.loads(raw)
        if at >= entry["e"]:
            return "expired"
        return _grant(tr, {**entry, "exp": entry["e"]}, workspace_id, at)

    outcome = db.transact(check)
    if isinstance(outcome, RelayGrant):
        return outcome
    raise RelayDenied(outcome)


def close_cookie_session(db: Database, token: str) -> None:
    """Forget a relay cookie session (idempotent)."""
    db.transact(lambda tr: tr.clear(_token_key(COOKIE_KIND, digest(token))))


# -- revocation ----------------------------------------------------------------------------------
def grant_still_valid(db: Database, grant: RelayGrant, *, now: float | None = None) -> bool:
    """True while the login session is live (same user) and the workspace is `ready`: identity's
    live-session marker (what logout, password change, reuse detection and disabling clear) and the
    workspace's state key, two point reads in one transaction."""
    if _now(now) >= grant.expires:
        return False

    def check(tr: Transaction) -> bool:
        live = identity.read_live(tr, grant.tenant_id, grant.session_id)
        if live is None or live[0] != grant.user_id:
            return False
        return repository.status_of(tr, grant.tenant_id, grant.workspace_id) == "ready"

    return db.transact(check)


# -- activity ------------------------------------------------------------------------------------
_last_written: dict[str, float] = {}
_activity_lock = threading.Lock()


def record_activity(db: Database, tenant_id: str, workspace_id: str, *, now: float | None = None) -> bool:
    """Note relayed traffic for idle stop; writes at most once per `workspace_activity_interval`
    per workspace and process (True when it wrote). Cheap to call on every message."""
    at = _now(now)
    interval = get_settings().workspace_activity_interval
    with _activity_lock:
        if at - _last_written.get(workspace_id, float("-inf")) < interval:
            return False
        _last_written[workspace_id] = at
        if len(_last_written) > 10_000:  # bound the memory of a long-lived relay
            _last_written.clear()
    db.transact(_write_activity, tenant_id, workspace_id, at, interval)
    return True


def _write_activity(tr: Transaction, tenant_id: str, workspace_id: str, at: float, interval: float) -> None:
    key = repository.activity_key(tenant_id, workspace_id)
    raw = tr.snapshot.get(key)  # snapshot: relays racing on one workspace must not conflict
    if raw is not None and at - float(fdbtuple.unpack(raw)[0]) < interval:
        return  # another relay replica wrote it recently
    tr.set(key, fdbtuple.pack((at,)))


def last_activity(tr: Transaction, tenant_id: str, workspace_id: str) -> float | None:
    raw = tr.get(repository.activity_key(tenant_id, workspace_id), snapshot=True)
    return None if raw is None else float(fdbtuple.unpack(raw)[0])


# -- sweeping (the reconciler) -------------------------------------------------------------------
def sweep_expired(db: Database, *, now: float | None = None, limit: int = 500) -> int:
    """Clear up to `limit` expired tickets / cookie sessions (and their expiry entries)."""
    at = _now(now)
    begin = keyspace.WORKSPACE_INDEX.range("token_exp")[0]
    end = keyspace.WORKSPACE_INDEX.key("token_exp", int(at))

    def step(tr: Transaction) -> int:
        rows = tr.get_range(begin, end, limit=limit)
        for key, _ in rows:
            _, _, kind, token_digest = keyspace.WORKSPACE_INDEX.unpack(key)
            tr.clear(_token_key(kind, token_digest))
            tr.clear(key)
        return len(rows)

    return db.transact(step)
