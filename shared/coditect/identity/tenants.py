"""The tenant function's logic: tenant, its users, invites, role changes and disabling users.

Role rules (docs/identity.md): owners and admins manage the tenant; only an owner can grant
the owner role, change an owner's role, invite an owner or disable an owner; nobody can demote
or disable the last enabled owner (409 `last_owner`). Users of other tenants are simply not
found (404): every read is under `ctx.tenant_id`.
"""

from __future__ import annotations

import uuid
from typing import Any

from coditect.errors import Conflict, NotFound
from coditect.http.call import Call
from coditect.http.envelope import page
from coditect.identity import authz, clock, tokens
from coditect.identity import repositories as repo
from coditect.identity import sessions as ls
from coditect.identity.models import (
    InviteBody,
    InviteOut,
    InviteRecord,
    PageQuery,
    RoleBody,
    TenantOut,
    UserOut,
    UserRecord,
    email_key,
    utc,
)
from coditect.store import Transaction


def _last_owner() -> Conflict:
    return Conflict("The tenant must keep at least one owner.", code="last_owner")


def get_tenant(call: Call) -> TenantOut:
    ctx = call.ctx
    tenant = call.db.transact(repo.get_tenant, ctx.tenant_id)
    if tenant is None:
        raise NotFound()
    return TenantOut.of(tenant)


def list_users(call: Call) -> dict[str, Any]:
    ctx = authz.require_admin(call)
    query: PageQuery = call.query

    def read(tr: Transaction) -> tuple[list[UserRecord], str | None]:
        rows, cursor = repo.users(ctx.tenant_id).page(
            tr, limit=query.limit, cursor=query.cursor, query=f"tenant-users:{ctx.tenant_id}", snapshot=True
        )
        return [user for _, user in rows if not user.disabled], cursor

    users, cursor = call.db.transact(read)
    return page([UserOut.of(u) for u in users], cursor)


def create_invite(call: Call) -> InviteOut:
    ctx = authz.require_admin(call)
    body: InviteBody = call.body
    if body.role == "owner" and ctx.role != "owner":
        raise authz.forbidden(call, reason="owner_required")
    now = clock.now()
    token = tokens.new_invite_token()
    digest = tokens.invite_digest(token)
    invite = InviteRecord(
        id=str(uuid.uuid4()),
        tenant_id=ctx.tenant_id,
        role=body.role,
        email_key=None if body.email is None else email_key(body.email),
        created_by=ctx.user_id,
        created_at=now,
        expires_at=now + call.settings.invite_ttl,
    )
    event_id = str(uuid.uuid4())

    def write(tr: Transaction) -> None:
        repo.put_invite(tr, invite, digest)
        authz.record(
            tr, call, type="invite_created", outcome="success", target_id=invite.id, event_id=event_id, at=now
        )

    call.db.transact(write)
    return InviteOut(invite_token=token, role=invite.role, expires_at=utc(invite.expires_at))


def _enabled_owners(tr: Transaction, tid: str) -> int:
    return sum(1 for u in repo.tenant_users(tr, tid) if u.role == "owner" and not u.disabled)


def change_role(call: Call) -> UserOut:
    ctx = authz.require_admin(call)
    body: RoleBody = call.body
    uid = call.uuid_param("id")
    now, event_id = clock.now(), str(uuid.uuid4())

    def write(tr: Transaction) -> UserRecord | str:
        user = repo.get_user(tr, ctx.tenant_id, uid)
        if user is None or user.disabled:
            return "not_found"
        if ctx.role != "owner" and "owner" in (user.role, body.role):
            return "forbidden"
        if user.role == body.role:
            return user
        if user.role == "owner" and _enabled_owners(tr, ctx.tenant_id) <= 1:
            return "last_owner"
        changed = user.model_copy(update={"role": body.role, "updated_at": now})
        repo.put_user(tr, changed)
        ls.set_role(tr, ctx.tenant_id, uid, body.role)
        authz.record(
            tr,
            call,
            type="role_change",
            outcome="success",
            reason=f"{user.role}->{body.role}",
            target_id=uid,
            event_id=event_id,
            at=now,
        )
        return changed

    result = call.db.transact(write)
    if result == "not_found":
        raise NotFound()
    if result == "forbidden":
        raise authz.forbidden(call, reason="owner_required", target_id=uid)
    if result == "last_owner":
        raise _last_owner()
    assert isinstance(result, UserRecord)
    return UserOut.of(result)


def disable_user(call: Call) -> None:
    ctx = authz.require_admin(call)
    uid = call.uuid_param("id")
    now, event_id = clock.now(), str(uuid.uuid4())

    def write(tr: Transaction) -> str | None:
        user = repo.get_user(tr, ctx.tenant_id, uid)
        if user is None:
            return "not_found"
        if user.disabled:
            return None  # already disabled: 204 again
        if user.role == "owner":
            if ctx.role != "owner":
                return "forbidden"
            if _enabled_owners(tr, ctx.tenant_id) <= 1:
                return "last_owner"
        repo.put_user(tr, user.model_copy(update={"disabled": True, "updated_at": now}))
        ls.revoke_user(tr, ctx.tenant_id, uid, now=now, reason="user_disabled")
        authz.record(
            tr, call, type="user_disabled", outcome="success", target_id=uid, event_id=event_id, at=now
        )
        return None

    result = call.db.transact(write)
    if result == "not_found":
        raise NotFound()
    if result == "forbidden":
        raise authz.forbidden(call, reason="owner_required", target_id=uid)
    if result == "last_owner":
        raise _last_owner()
