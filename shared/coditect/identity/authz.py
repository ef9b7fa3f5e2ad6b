"""Audit records about the authenticated caller, and the audited 403.

The runtime refuses routes declared `auth="admin"` to callers who are not owner or admin through
`forbidden` (resolved by name, as the authenticator is); services refuse finer rules (only an
owner may touch an owner) with `refusal` inside their own transaction, so the record commits.
"""

from __future__ import annotations

import uuid

from coditect import audit
from coditect.errors import Forbidden
from coditect.identity import clock
from coditect.identity.context import TenantContext
from coditect.origin import Origin
from coditect.store import Database, Transaction


def record(
    tr: Transaction,
    ctx: TenantContext,
    origin: Origin,
    *,
    type: str,
    outcome: audit.Outcome,
    reason: str | None = None,
    target_id: str | None = None,
    event_id: str | None = None,
    at: float | None = None,
) -> None:
    """An audit event about the caller `ctx`, in the caller's transaction."""
    audit.record(
        tr,
        ctx.tenant_id,
        type=type,
        actor_id=ctx.user_id,
        session_id=ctx.session_id,
        request_id=origin.request_id,
        ip=origin.ip,
        outcome=outcome,
        reason=reason,
        target_id=target_id,
        event_id=event_id,
        at=at,
    )


def refusal(
    tr: Transaction,
    ctx: TenantContext,
    origin: Origin,
    *,
    reason: str = "forbidden",
    target_id: str | None = None,
    event_id: str | None = None,
    at: float | None = None,
) -> Forbidden:
    """Record an authorization failure in `tr` and return the 403: the body returns it (so the
    record commits) and its caller raises it (`errors.raise_returned`)."""
    record(
        tr,
        ctx,
        origin,
        type="authorization",
        outcome="failure",
        reason=reason,
        target_id=target_id,
        event_id=event_id,
        at=at,
    )
    return Forbidden()


def forbidden(db: Database, ctx: TenantContext, origin: Origin, *, reason: str) -> Forbidden:
    """Record an authorization failure in a transaction of its own and return the 403 to raise."""
    event_id, now = str(uuid.uuid4()), clock.now()
    return db.transact(lambda tr: refusal(tr, ctx, origin, reason=reason, event_id=event_id, at=now))
