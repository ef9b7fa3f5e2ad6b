"""Where identity records live in the store, and the only code that reads or writes them.

Per tenant (`keyspace.tenant(tid)`): the tenant record, users, login sessions (+ by-user index),
live-session markers and invites. Global: the email index (unique across the platform) and the
token-digest index (`keyspace.TOKEN_DIGESTS`, kinds "refresh" and "invite").

The tenant id these functions take never comes from a request: authenticated code passes
`ctx.tenant_id` from the `TenantContext`; register, login and refresh (which run before there is
a context) take it from the store's own indexes (email → user, token digest → session).
"""

from __future__ import annotations

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.identity.access_tokens import ROLES, Role
from coditect.identity.models import AuthSessionRecord, InviteRecord, TenantRecord, UserRecord
from coditect.repo import Index, RecordCodec, Table
from coditect.store import Transaction

TENANT_CODEC = RecordCodec(TenantRecord, 1)
USER_CODEC = RecordCodec(UserRecord, 1)
SESSION_CODEC = RecordCodec(AuthSessionRecord, 1)
INVITE_CODEC = RecordCodec(InviteRecord, 1)


def tenants(tid: str) -> Table[TenantRecord]:
    return Table(keyspace.tenant(tid).sub(keyspace.TENANT_RECORD), TENANT_CODEC)


def users(tid: str) -> Table[UserRecord]:
    return Table(keyspace.tenant(tid).sub(keyspace.USERS), USER_CODEC)


def sessions(tid: str) -> Table[AuthSessionRecord]:
    root = keyspace.tenant(tid)
    by_user: Index[AuthSessionRecord] = Index(
        "by_user", root.sub(keyspace.AUTH_SESSIONS_BY_USER), lambda s: (s.user_id,)
    )
    return Table(root.sub(keyspace.AUTH_SESSIONS), SESSION_CODEC, [by_user])


def invites(tid: str) -> Table[InviteRecord]:
    return Table(keyspace.tenant(tid).sub(keyspace.INVITES), INVITE_CODEC)


# -- tenant and users ----------------------------------------------------------------------------
def get_tenant(tr: Transaction, tid: str) -> TenantRecord | None:
    return tenants(tid).get(tr)


def put_tenant(tr: Transaction, tenant: TenantRecord) -> None:
    tenants(tenant.id).put(tr, (), tenant)


def email_owner(tr: Transaction, key: str) -> tuple[str, str] | None:
    """(tenant id, user id) holding the email key, or None."""
    raw = tr.get(keyspace.EMAIL_INDEX.key(key))
    if raw is None:
        return None
    tid, uid = fdbtuple.unpack(raw)
    return str(tid), str(uid)


def get_user(tr: Transaction, tid: str, uid: str) -> UserRecord | None:
    return users(tid).get(tr, uid)


def create_user(tr: Transaction, user: UserRecord) -> None:
    """Write a new user and claim its email; the caller checked `email_owner` in this transaction."""
    tr.set(keyspace.EMAIL_INDEX.key(user.email_key), fdbtuple.pack((user.tenant_id, user.id)))
    users(user.tenant_id).put(tr, (user.id,), user)


def put_user(tr: Transaction, user: UserRecord) -> None:
    """Update a user (the email never changes, so its index entry stays)."""
    users(user.tenant_id).put(tr, (user.id,), user)


def tenant_users(tr: Transaction, tid: str) -> list[UserRecord]:
    return [user for _, user in users(tid).scan(tr)]


# -- login sessions and their live markers --------------------------------------------------------
def get_session(tr: Transaction, tid: str, sid: str) -> AuthSessionRecord | None:
    return sessions(tid).get(tr, sid)


def put_session(tr: Transaction, session: AuthSessionRecord, previous: AuthSessionRecord | None) -> None:
    # The by-user index never changes after creation; `previous` spares the table a re-read.
    sessions(session.tenant_id).put(tr, (session.id,), session, previous=previous or session)


def create_session(tr: Transaction, session: AuthSessionRecord) -> None:
    sessions(session.tenant_id).put(tr, (session.id,), session)


def delete_session(tr: Transaction, session: AuthSessionRecord) -> None:
    sessions(session.tenant_id).delete(tr, (session.id,), session)
    clear_live(tr, session.tenant_id, session.id)


def user_session_ids(tr: Transaction, tid: str, uid: str) -> list[str]:
    return [str(pk[0]) for pk in sessions(tid).find(tr, "by_user", uid)]


def _live_key(tid: str, sid: str) -> bytes:
    return keyspace.tenant(tid).sub(keyspace.LIVE_SESSIONS).key(sid)


def set_live(tr: Transaction, tid: str, sid: str, uid: str, role: Role) -> None:
    tr.set(_live_key(tid, sid), fdbtuple.pack((uid, role)))


def clear_live(tr: Transaction, tid: str, sid: str) -> None:
    tr.clear(_live_key(tid, sid))


def read_live(tr: Transaction, tid: str, sid: str, *, snapshot: bool = True) -> tuple[str, Role] | None:
    """(user id, current role) while the login session is usable; the middleware's one read.

    A transaction that writes the marker back must read with `snapshot=False`, so that a logout
    committing meanwhile makes it conflict instead of being undone."""
    raw = tr.get(_live_key(tid, sid), snapshot=snapshot)
    if raw is None:
        return None
    uid, role = fdbtuple.unpack(raw)
    if role not in ROLES:
        return None
    return str(uid), role


# -- token digests ---------------------------------------------------------------------------------
def set_refresh_digest(tr: Transaction, digest: bytes, tid: str, sid: str, generation: int) -> None:
    tr.set(keyspace.TOKEN_DIGESTS.key("refresh", digest), fdbtuple.pack((tid, sid, generation)))


def clear_refresh_digest(tr: Transaction, digest: bytes) -> None:
    tr.clear(keyspace.TOKEN_DIGESTS.key("refresh", digest))


def lookup_refresh(tr: Transaction, digest: bytes) -> tuple[str, str, int] | None:
    raw = tr.get(keyspace.TOKEN_DIGESTS.key("refresh", digest))
    if raw is None:
        return None
    tid, sid, generation = fdbtuple.unpack(raw)
    return str(tid), str(sid), int(generation)


def put_invite(tr: Transaction, invite: InviteRecord, digest: bytes | None) -> None:
    if digest is not None:
        tr.set(keyspace.TOKEN_DIGESTS.key("invite", digest), fdbtuple.pack((invite.tenant_id, invite.id)))
    invites(invite.tenant_id).put(tr, (invite.id,), invite)


def lookup_invite(tr: Transaction, digest: bytes) -> InviteRecord | None:
    raw = tr.get(keyspace.TOKEN_DIGESTS.key("invite", digest))
    if raw is None:
        return None
    tid, invite_id = fdbtuple.unpack(raw)
    return invites(str(tid)).get(tr, str(invite_id))
