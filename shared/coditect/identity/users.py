"""The users function's logic: the caller's own user, password and login sessions."""

from __future__ import annotations

import uuid

from coditect import ratelimit
from coditect.config import Settings
from coditect.errors import NotFound, RateLimited, raise_returned
from coditect.identity import authz, clock, hashing, throttle
from coditect.identity import login_sessions as ls
from coditect.identity import repository as repo
from coditect.identity.accounts import invalid_credentials
from coditect.identity.context import TenantContext
from coditect.identity.models import (
    AuthSessionOut,
    PageQuery,
    PasswordBody,
    PatchMeBody,
    TenantRecord,
    UserOut,
    UserRecord,
    utc,
)
from coditect.identity.passwords import check_password_policy
from coditect.origin import Origin
from coditect.repo.cursor import paginate
from coditect.store import Database, Transaction


def _me(tr: Transaction, ctx: TenantContext) -> UserRecord:
    user = repo.get_user(tr, ctx.tenant_id, ctx.user_id)
    if user is None or user.disabled:
        raise NotFound()
    return user


def get_me(db: Database, ctx: TenantContext) -> UserOut:
    return UserOut.of(db.transact(_me, ctx))


def patch_me(db: Database, ctx: TenantContext, body: PatchMeBody) -> UserOut:
    now = clock.now()

    def write(tr: Transaction) -> UserRecord:
        user = _me(tr, ctx)
        if body.name is None or body.name == user.name:
            return user
        changed = user.model_copy(update={"name": body.name, "updated_at": now})
        repo.put_user(tr, changed)
        return changed

    return UserOut.of(db.transact(write))


def change_password(
    db: Database, settings: Settings, ctx: TenantContext, origin: Origin, body: PasswordBody
) -> None:
    """Verify the current password (throttled per user), set the new one, end the other sessions."""
    now = clock.now()
    policy = throttle.password_change(settings)

    def attempt(tr: Transaction) -> tuple[UserRecord, TenantRecord | None] | RateLimited:
        decision = ratelimit.hit(tr, policy, ctx.user_id, now)
        if not decision.allowed:
            return RateLimited(decision.retry_after)  # returned: the strike commits
        return _me(tr, ctx), repo.get_tenant(tr, ctx.tenant_id)

    user, tenant = raise_returned(db.transact(attempt))
    hasher = hashing.passwords(settings)
    if not hasher.verify(user.password_hash, body.current_password):
        event_id = str(uuid.uuid4())
        db.transact(
            lambda tr: authz.record(
                tr,
                ctx,
                origin,
                type="password_change",
                outcome="failure",
                reason="invalid_credentials",
                event_id=event_id,
                at=now,
            )
        )
        raise invalid_credentials()
    check_password_policy(
        body.new_password,
        email=user.email,
        tenant_name=tenant.name if tenant else None,
        name=user.name,
        current=body.current_password,
    )
    new_hash = hasher.hash(body.new_password)
    event_id = str(uuid.uuid4())

    def write(tr: Transaction) -> None:
        current = _me(tr, ctx)
        repo.put_user(tr, current.model_copy(update={"password_hash": new_hash, "updated_at": now}))
        ls.revoke_user(tr, ctx.tenant_id, ctx.user_id, now=now, reason="password_change", keep=ctx.session_id)
        ratelimit.reset(tr, policy, ctx.user_id)
        authz.record(tr, ctx, origin, type="password_change", outcome="success", event_id=event_id, at=now)

    db.transact(write)


def list_sessions(
    db: Database, settings: Settings, ctx: TenantContext, query: PageQuery
) -> tuple[list[AuthSessionOut], str | None]:
    """The caller's usable login sessions (revoked or expired ones are left out of each page)."""
    now = clock.now()
    index = repo.sessions(ctx.tenant_id).indexes["by_user"].subspace

    def read(tr: Transaction) -> tuple[list[AuthSessionOut], str | None]:
        begin, end = index.range(ctx.user_id)
        kvs, cursor = paginate(
            tr,
            begin,
            end,
            limit=query.limit,
            cursor=query.cursor,
            query=f"auth-sessions:{ctx.tenant_id}:{ctx.user_id}",
            snapshot=True,
        )
        items = []
        for key, _ in kvs:
            sid = str(index.unpack(key)[-1])
            s = repo.get_session(tr, ctx.tenant_id, sid)
            if s is None or s.revoked_at is not None:
                continue
            if now >= min(
                s.created_at + settings.refresh_absolute_ttl, s.last_used_at + settings.refresh_idle_ttl
            ):
                continue
            items.append(
                AuthSessionOut(
                    id=s.id,
                    created_at=utc(s.created_at),
                    last_used_at=utc(s.last_used_at),
                    user_agent=s.user_agent,
                    current=s.id == ctx.session_id,
                )
            )
        return items, cursor

    return db.transact(read)


def delete_session(db: Database, ctx: TenantContext, origin: Origin, sid: str) -> None:
    """Revoke one of the caller's own login sessions (another user's is not found)."""
    now, event_id = clock.now(), str(uuid.uuid4())

    def write(tr: Transaction) -> None:
        session = repo.get_session(tr, ctx.tenant_id, sid)
        if session is None or session.user_id != ctx.user_id:
            raise NotFound()
        if ls.revoke(tr, session, now=now, reason="deleted_by_user"):
            authz.record(
                tr,
                ctx,
                origin,
                type="auth_session_revoked",
                outcome="success",
                target_id=sid,
                event_id=event_id,
                at=now,
            )

    db.transact(write)
