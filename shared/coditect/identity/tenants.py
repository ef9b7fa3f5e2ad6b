"""The tenant function's logic: tenant, its users, invites, role changes and disabling users.

Role rules (docs/identity.md): owners and admins manage the tenant; only an owner can grant
the owner role, change an owner's role, invite an owner or disable an owner; nobody can demote
or disable the last enabled owner (409 `last_owner`). Users of other tenants are simply not
found (404): every read is under `ctx.tenant_id`. The routes other than `tenant.get` are declared
`auth="admin"`: the runtime refuses other roles (audited) before these run.
"""

from __future__ import annotations

import uuid

from coditect.config import Settings
from coditect.errors import Conflict, Forbidden, NotFound, raise_returned
from coditect.identity import authz, clock, tokens
from coditect.identity import login_sessions as ls
from coditect.identity import repository as repo
from coditect.identity.context import TenantContext
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
from coditect.origin import Origin
from coditect.store import Database, Transaction


def _last_owner() -> Conflict:
    return Conflict("The tenant must keep at least one owner.", code="last_owner")


def get_tenant(db: Database, ctx: TenantContext) -> TenantOut:
    tenant = db.transact(repo.get_tenant, ctx.tenant_id)
    if tenant is None:
        raise NotFound()
    return TenantOut.of(tenant)


def list_users(db: Database, ctx: TenantContext, query: PageQuery) -> tuple[list[UserOut], str | None]:
    """One page of the tenant's enabled users (disabled ones are left out of each page)."""

    def read(tr: Transaction) -> tuple[list[UserRecord], str | None]:
        rows, cursor = repo.users(ctx.tenant_id).page(
            tr, limit=query.limit, cursor=query.cursor, query=f"tenant-users:{ctx.tenant_id}", snapshot=True
        )
        return [user for _, user in rows if not user.disabled], cursor

    users, cursor = db.transact(read)
    return [UserOut.of(u) for u in users], cursor


def create_invite(
    db: Database, settings: Settings, ctx: TenantContext, origin: Origin, body: InviteBody
) -> InviteOut:
    """A single-use invite token for `body.role` (only an owner invites an owner)."""
    if body.role == "owner" and ctx.role != "owner":
        raise authz.forbidden(db, ctx, origin, reason="owner_required")
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
        expires_at=now + settings.invite_ttl,
    )
    event_id = str(uuid.uuid4())

    def write(tr: Transaction) -> None:
        repo.put_invite(tr, invite, digest)
        authz.record(
            tr,
            ctx,
            origin,
            type="invite_created",
            outcome="success",
            target_id=invite.id,
            event_id=event_id,
            at=now,
        )

    db.transact(write)
    return InviteOut(invite_token=token, role=invite.role, expires_at=utc(invite.expires_at))


def _enabled_owners(tr: Transaction, tid: str) -> int:
    return sum(1 for u in repo.tenant_users(tr, tid) if u.role == "owner" and not u.disabled)


def _owner_rules(
    tr: Transaction,
    ctx: TenantContext,
    origin: Origin,
    user: UserRecord,
    new_role: str | None,
    *,
    event_id: str,
    now: float,
) -> Forbidden | None:
    """The owner rules of changing `user` to `new_role` (None: disabling them), decided in `tr`.

    Only an owner touches an owner or grants the owner role: the 403 is returned with its audit
    record written in `tr` (the caller commits and raises it); a change that would leave no
    enabled owner raises 409 `last_owner`."""
    if ctx.role != "owner" and "owner" in (user.role, new_role):
        return authz.refusal(
            tr, ctx, origin, reason="owner_required", target_id=user.id, event_id=event_id, at=now
        )
    if user.role == "owner" and new_role != "owner" and _enabled_owners(tr, ctx.tenant_id) <= 1:
        raise _last_owner()
    return None


def change_role(db: Database, ctx: TenantContext, origin: Origin, uid: str, body: RoleBody) -> UserOut:
    """Give the user `uid` the role `body.role`; their live sessions carry it from the next request."""
    now, event_id = clock.now(), str(uuid.uuid4())

    def write(tr: Transaction) -> UserRecord | Forbidden:
        user = repo.get_user(tr, ctx.tenant_id, uid)
        if user is None or user.disabled:
            raise NotFound()
        refused = _owner_rules(tr, ctx, origin, user, body.role, event_id=event_id, now=now)
        if refused is not None:
            return refused
        if user.role == body.role:
            return user
        changed = user.model_copy(update={"role": body.role, "updated_at": now})
        repo.put_user(tr, changed)
        ls.set_role(tr, ctx.tenant_id, uid, body.role)
        authz.record(
            tr,
            ctx,
            origin,
            type="role_change",
            outcome="success",
            reason=f"{user.role}->{body.role}",
            target_id=uid,
            event_id=event_id,
            at=now,
        )
        return changed

    return UserOut.of(raise_returned(db.transact(write)))


def disable_user(db: Database, ctx: TenantContext, origin: Origin, uid: str) -> None:
    """Disable the user `uid` and revoke their login sessions (already disabled: nothing to do)."""
    now, event_id = clock.now(), str(uuid.uuid4())

    def write(tr: Transaction) -> Forbidden | None:
        user = repo.get_user(tr, ctx.tenant_id, uid)
        if user is None:
            raise NotFound()
        if user.disabled:
            return None  # already disabled: 204 again
        refused = _owner_rules(tr, ctx, origin, user, None, event_id=event_id, now=now)
        if refused is not None:
            return refused
        repo.put_user(tr, user.model_copy(update={"disabled": True, "updated_at": now}))
        ls.revoke_user(tr, ctx.tenant_id, uid, now=now, reason="user_disabled")
        authz.record(
            tr, ctx, origin, type="user_disabled", outcome="success", target_id=uid, event_id=event_id, at=now
        )
        return None

    raise_returned(db.transact(write))
