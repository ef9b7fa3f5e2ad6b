"""The workspace credential: what the sync agent presents instead of any user token.

    mint(db, record, settings, *, now=None) -> str       the provisioner, before starting the workload
    is_credential(token) -> bool                         the auth middleware's dispatch test
    authenticate(db, token, route, params) -> TenantContext          raises Unauthorized / Forbidden
    workspace_of(ctx) -> str | None                      the workspace a context acts for (None: a user)

A credential is `PREFIX` + 256 random bits (URL-safe base64), stored only as SHA-256 under
`keyspace.TOKEN_DIGESTS` kind "ws_cred" (the digest helper of relay tickets), with an expiry entry the
gc job's ticket sweep also clears. It is bound to tenant, owner, workspace session and workspace,
and expires `workspace_max_lifetime` after minting (+ the start deadline: a workspace never lives
longer than that).

Checked on every request (one transaction, point reads only):

- unknown / malformed → 401 token_invalid; past its expiry → 401 token_expired;
- the workspace is `stopped` or `failed` (or gone), its session is not live, or its owner is
  disabled or removed → 401 session_revoked. `stopping` is still accepted: the agent flushes then;
- the route is neither one of the files routes of ITS session nor ``PUT
  /api/v5/workspaces/{its id}/sync`` (the agent's report channel) → 403 forbidden, audited with
  the workspace as the actor.

Minting is audited (`workspace_credential_issued`), as is every refusal for a route
(`workspace_credential_refused`, reason `route:<name>`), both with actor `workspace:<id>`.
The context it yields has the owner's tenant and user (the files API's ownership checks apply
unchanged) and ``session_id = "workspace:<id>"``, so audit entries made under it name the
workspace as the actor; `workspace_of` reads that marker back.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from coditect import audit, keyspace
from coditect.config import Settings
from coditect.errors import Forbidden, Unauthorized
from coditect.identity import repository as identity
from coditect.identity.context import TenantContext
from coditect.identity.context import mint as mint_context
from coditect.sessions.access import load_session
from coditect.store import Database, Transaction
from coditect.workspaces import repository
from coditect.workspaces.models import TERMINAL, WorkspaceRecord
from coditect.workspaces.tickets import digest

KIND = "ws_cred"
PREFIX = "cwc_"  # tells the middleware apart from a JWT without parsing (a JWT starts with "eyJ")
ACTOR_PREFIX = "workspace:"
SYNC_ROUTE = "workspaces.sync"
_FILES_ROUTE_PREFIX = "files."
_TOKEN_BYTES = 32
_MAX_LENGTH = 80


def _token_key(token_digest: bytes) -> bytes:
    return keyspace.TOKEN_DIGESTS.key(KIND, token_digest)


def _expiry_key(expires: float, token_digest: bytes) -> bytes:
    # The same layout as relay tickets: `tickets.sweep_expired` (the gc job) clears both keys.
    return keyspace.WORKSPACE_INDEX.key("token_exp", int(expires) + 1, KIND, token_digest)


def lifetime(settings: Settings) -> int:
    """Seconds a credential lives: a workspace cannot outlive its start deadline + max lifetime."""
    return settings.workspace_max_lifetime + settings.workspace_start_deadline


def mint(db: Database, record: WorkspaceRecord, settings: Settings, *, now: float | None = None) -> str:
    """A new credential for `record`'s workload (each start attempt mints its own; all die with it)."""
    token = PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    expires = (time.time() if now is None else now) + lifetime(settings)
    value = {"t": record.tenant_id, "u": record.user_id, "s": record.session_id, "w": record.id, "e": expires}

    def store(tr: Transaction) -> None:
        token_digest = digest(token)
        tr.set(_token_key(token_digest), json.dumps(value, separators=(",", ":")).encode())
        tr.set(_expiry_key(expires, token_digest), b"")
        audit.record(
            tr, record.tenant_id, type="workspace_credential_issued", actor_id=ACTOR_PREFIX + record.id,
            session_id=ACTOR_PREFIX + record.id, request_id=None, ip=None, outcome="success",
            target_id=record.user_id,
        )  # fmt: skip

    db.transact(store)
    return token


def is_credential(token: str) -> bool:
    return token.startswith(PREFIX)


def workspace_of(ctx: TenantContext) -> str | None:
    """The workspace a context acts for, None for a user's own request."""
    return ctx.session_id[len(ACTOR_PREFIX) :] if ctx.session_id.startswith(ACTOR_PREFIX) else None


def _allowed(entry: Mapping[str, Any], route: str, params: Mapping[str, str]) -> bool:
    if route.startswith(_FILES_ROUTE_PREFIX):
        return bool(params.get("sid") == entry["s"])
    return route == SYNC_ROUTE and bool(params.get("id") == entry["w"])


def _check(
    tr: Transaction, token_digest: bytes, route: str, params: Mapping[str, str], now: float, request_id: str
) -> dict[str, Any] | str:
    raw = tr.get(_token_key(token_digest), snapshot=True)
    if raw is None:
        return "token_invalid"
    entry: dict[str, Any] = json.loads(raw)
    if now >= entry["e"]:
        return "token_expired"
    tid, wid = entry["t"], entry["w"]
    status = repository.status_of(tr, tid, wid)
    session = load_session(tr, tid, entry["s"])
    user = identity.get_user(tr, tid, entry["u"])
    if (
        status is None
        or status in TERMINAL
        or session is None
        or session.state != "live"
        or session.owner_id != entry["u"]
        or user is None
        or user.disabled
    ):
        return "session_revoked"
    if not _allowed(entry, route, params):
        audit.record(
            tr, tid, type="workspace_credential_refused", actor_id=ACTOR_PREFIX + wid,
            session_id=ACTOR_PREFIX + wid, request_id=request_id, ip=None, outcome="failure",
            reason=f"route:{route}",
        )  # fmt: skip
        return "forbidden"
    return entry


def authenticate(
    db: Database,
    token: str,
    route: str,
    params: Mapping[str, str],
    *,
    request_id: str = "",
    now: float | None = None,
) -> TenantContext:
    """The context of a valid credential on an allowed route (see the module docstring)."""
    if len(token) > _MAX_LENGTH or not token.isascii():
        raise Unauthorized("The access token is invalid.", code="token_invalid")
    at = time.time() if now is None else now
    outcome = db.transact(_check, digest(token), route, params, at, request_id)
    if outcome == "forbidden":
        raise Forbidden("A workspace credential is accepted only on its session's files routes.")
    if outcome == "token_expired":
        raise Unauthorized("The access token has expired.", code="token_expired")
    if outcome == "session_revoked":
        raise Unauthorized("The workspace credential has been revoked.", code="session_revoked")
    if not isinstance(outcome, dict):
        raise Unauthorized("The access token is invalid.", code="token_invalid")
    return mint_context(
        tenant_id=outcome["t"], user_id=outcome["u"], session_id=ACTOR_PREFIX + outcome["w"], role="member"
    )
