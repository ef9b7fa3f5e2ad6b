"""POST /auth/refresh and POST /auth/logout."""

from __future__ import annotations

import logging
import uuid

from coditect import audit
from coditect.config import Settings
from coditect.errors import RateLimited, Unauthorized
from coditect.identity import clock, throttle, tokens
from coditect.identity import login_sessions as ls
from coditect.identity import repository as repo
from coditect.identity.accounts import issue_tokens, pepper_of
from coditect.identity.context import TenantContext
from coditect.identity.models import RefreshOut
from coditect.origin import Origin
from coditect.store import Database, Transaction

log = logging.getLogger("coditect.identity")

_FAILURES = {
    "not_found": ("The refresh token is not valid.", "refresh_token_not_found"),
    "reused": ("The refresh token was already used; the login session is revoked.", "refresh_token_reused"),
    "expired": ("The login session has expired.", "session_expired"),
    "revoked": ("The login session has been revoked.", "session_revoked"),
}


def refresh(db: Database, settings: Settings, origin: Origin, refresh_token: str) -> RefreshOut:
    """Spend `refresh_token` for a new access token and its successor (see `login_sessions.redeem`)."""
    now = clock.now()
    pepper = pepper_of(settings)
    digest = tokens.refresh_digest(pepper, refresh_token)
    info = ls.RequestInfo(request_id=origin.request_id, ip=origin.ip, event_id=str(uuid.uuid4()))
    result = db.transact(
        ls.redeem,
        digest=digest,
        presented=refresh_token,
        pepper=pepper,
        now=now,
        settings=settings,
        policy=throttle.refresh_ip(settings),
        info=info,
    )
    if result.outcome == "rate_limited":
        raise RateLimited(result.retry_after)
    if result.outcome in _FAILURES:
        message, code = _FAILURES[result.outcome]
        if result.outcome == "reused":
            log.warning(
                "refresh token reuse: login session revoked",
                extra={"fields": {"session_id": result.session.id if result.session else None}},
            )
        raise Unauthorized(message, code=code)
    assert result.user is not None and result.session is not None and result.refresh_token is not None
    return RefreshOut(
        tokens=issue_tokens(settings, result.user, result.session.id, result.refresh_token, now)
    )


def logout(db: Database, ctx: TenantContext, origin: Origin) -> None:
    """Revoke the caller's login session; a session already revoked answers 204 again."""
    now = clock.now()
    event_id = str(uuid.uuid4())

    def end(tr: Transaction) -> None:
        session = repo.get_session(tr, ctx.tenant_id, ctx.session_id)
        if session is None or session.user_id != ctx.user_id:
            return
        if ls.revoke(tr, session, now=now, reason="logout"):
            audit.record(
                tr,
                ctx.tenant_id,
                type="logout",
                actor_id=ctx.user_id,
                session_id=ctx.session_id,
                request_id=origin.request_id,
                ip=origin.ip,
                outcome="success",
                event_id=event_id,
                at=now,
            )

    db.transact(end)
