"""Role checks for owner/admin routes, with every refusal written to the audit log."""

from __future__ import annotations

import uuid

from coditect import audit
from coditect.auth.context import TenantContext
from coditect.errors import Forbidden
from coditect.http.call import Call
from coditect.identity import clock
from coditect.store import Transaction


def record(
    tr: Transaction,
    call: Call,
    *,
    type: str,
    outcome: audit.Outcome,
    reason: str | None = None,
    target_id: str | None = None,
    event_id: str | None = None,
    at: float | None = None,
) -> None:
    """An audit event about the authenticated caller of `call`, in the caller's transaction."""
    ctx = call.ctx
    audit.record(
        tr,
        ctx.tenant_id,
        type=type,
        actor_id=ctx.user_id,
        session_id=ctx.session_id,
        request_id=call.request_id,
        ip=call.client_ip,
        outcome=outcome,
        reason=reason,
        target_id=target_id,
        event_id=event_id,
        at=at,
    )


def forbidden(call: Call, *, reason: str = "forbidden", target_id: str | None = None) -> Forbidden:
    """Record an authorization failure and return the 403 to raise."""
    event_id, now = str(uuid.uuid4()), clock.now()
    call.db.transact(
        lambda tr: record(
            tr,
            call,
            type="authorization",
            outcome="failure",
            reason=reason,
            target_id=target_id,
            event_id=event_id,
            at=now,
        )
    )
    return Forbidden()


def require_admin(call: Call) -> TenantContext:
    """The caller's context if they are owner or admin (current role), else 403 (audited)."""
    ctx = call.ctx
    if not ctx.is_admin:
        raise forbidden(call, reason="role_required")
    return ctx
