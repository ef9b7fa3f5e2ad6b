"""The users function's logic: the caller's own user, password and login sessions."""

from __future__ import annotations

import uuid
from typing import Any

from coditect import ratelimit
from coditect.auth.passwords import check_password_policy
from coditect.errors import NotFound, RateLimited
from coditect.http.call import Call
from coditect.http.envelope import page
from coditect.identity import authz, clock, hashing, throttle
from coditect.identity import repositories as repo
from coditect.identity import sessions as ls
from coditect.identity.accounts import invalid_credentials
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
from coditect.repo.cursor import paginate
from coditect.store import Transaction


def _me(tr: Transaction, call: Call) -> UserRecord:
    user = repo.get_user(tr, call.ctx.tenant_id, call.ctx.user_id)
    if user is None or user.disabled:
        raise NotFound()
    return user


def get_me(call: Call) -> UserOut:
    return UserOut.of(call.db.transact(_me, call))


def patch_me(call: Call) -> UserOut:
    body: PatchMeBody = call.body
    now = clock.now()

    def write(tr: Transaction) -> UserRecord:
        user = _me(tr, call)
        if body.name is None or body.name == user.name:
            return user
        changed = user.model_copy(update={"name": body.name, "updated_at": now})
        repo.put_user(tr, changed)
        return changed

    return UserOut.of(call.db.transact(write))


def change_password(call: Call) -> None:
    """Verify the current password (throttled per user), set the new one, end the other sessions."""
    body: PasswordBody = call.body
    ctx, settings, now = call.ctx, call.settings, clock.now()
    policy = throttle.password_change(settings)

    def attempt(tr: Transaction) -> tuple[ratelimit.Decision, UserRecord, TenantRecord | None]:
        decision = ratelimit.hit(tr, policy, ctx.user_id, now)
        return decision, _me(tr, call), repo.get_tenant(tr, ctx.tenant_id)

    decision, user, tenant = call.db.transact(attempt)
    if not decision.allowed:
        raise RateLimited(decision.retry_after)
    hasher = hashing.passwords(settings)
    if not hasher.verify(user.password_hash, body.current_password):
        event_id = str(uuid.uuid4())
        call.db.transact(
            lambda tr: authz.record(
                tr,
                call,
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
        current = _me(tr, call)
        repo.put_user(tr, current.model_copy(update={"password_hash": new_hash, "updated_at": now}))
        ls.revoke_user(tr, ctx.tenant_id, ctx.user_id, now=now, reason="password_change", keep=ctx.session_id)
        ratelimit.reset(tr, policy, ctx.user_id)
        authz.record(tr, call, type="password_change", outcome="success", event_id=event_id, at=now)

    call.db.transact(write)


def list_sessions(call: Call) -> dict[str, Any]:
    """The caller's usable login sessions (revoked or expired ones are left out of each page)."""
    ctx, settings, now = call.ctx, call.settings, clock.now()
    query: PageQuery = call.query
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
        for kv in kvs:
            sid = str(index.unpack(kv.key)[-1])
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

    items, cursor = call.db.transact(read)
    return page(items, cursor)


def delete_session(call: Call) -> None:
    ctx, now = call.ctx, clock.now()
    sid = call.uuid_param("id")
    event_id = str(uuid.uuid4())

    def write(tr: Transaction) -> bool:
        session = repo.get_session(tr, ctx.tenant_id, sid)
        if session is None or session.user_id != ctx.user_id:
            return False
        if ls.revoke(tr, session, now=now, reason="deleted_by_user"):
            authz.record(
                tr,
                call,
                type="auth_session_revoked",
                outcome="success",
                target_id=sid,
                event_id=event_id,
                at=now,
            )
        return True

    if not call.db.transact(write):
        raise NotFound()
