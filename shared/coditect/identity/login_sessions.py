"""Login sessions: open, rotate (refresh), revoke and purge — each a transactional step.

A login session (`AuthSessionRecord`, id = the `sid` claim) is one refresh-token family. It is
usable while its *live marker* `tenant(tid)/live/<sid>` exists; the auth middleware reads only
that key on every request. Everything that ends a session — logout, password change, deleting
an auth session, disabling the user, refresh-token reuse — clears the marker in the same
transaction that records why, so the very next request carrying any access token of that
session answers 401 `session_revoked`.

Rotation (`redeem`) is decided inside one transaction and returns an outcome instead of raising,
so that what must be written even on failure (the rate-limit count, the family's revocation and
its audit event on reuse) commits; the caller raises afterwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from coditect import audit, ratelimit
from coditect.config import Settings
from coditect.identity import repository as repo
from coditect.identity import tokens
from coditect.identity.access_tokens import Role
from coditect.identity.models import AuthSessionRecord, UserRecord
from coditect.store import Transaction

MAX_USER_AGENT = 256


@dataclass(frozen=True)
class Material:
    """Ids and secrets of a new login session, drawn once, outside the retry loop: a retried
    transaction body (after `commit_unknown_result`) answers with the same `first_token`."""

    session_id: str
    first_token: str

    @classmethod
    def new(cls) -> Material:
        return cls(str(uuid.uuid4()), tokens.new_refresh_token())


def _index(tr: Transaction, pepper: bytes, session: AuthSessionRecord, token: str, generation: int) -> None:
    digest = tokens.refresh_digest(pepper, token)
    assert digest is not None  # a token we made always has our shape
    repo.set_refresh_digest(tr, digest, session.tenant_id, session.id, generation)


def open_session(
    tr: Transaction,
    *,
    user: UserRecord,
    material: Material,
    pepper: bytes,
    now: float,
    user_agent: str | None,
) -> tuple[AuthSessionRecord, str]:
    """Create a live login session for `user`; returns it and its first refresh token."""
    session = AuthSessionRecord(
        id=material.session_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
    )
    repo.create_session(tr, session)
    repo.set_live(tr, user.tenant_id, session.id, user.id, user.role)
    _index(tr, pepper, session, material.first_token, 0)
    return session, material.first_token


def revoke(tr: Transaction, session: AuthSessionRecord, *, now: float, reason: str) -> bool:
    """End a session (idempotent); True when it was still live."""
    repo.clear_live(tr, session.tenant_id, session.id)
    if session.revoked_at is not None:
        return False
    ended = session.model_copy(update={"revoked_at": now, "revoked_reason": reason})
    repo.put_session(tr, ended, session)
    return True


def revoke_user(
    tr: Transaction, tid: str, uid: str, *, now: float, reason: str, keep: str | None = None
) -> list[str]:
    """Revoke every session of a user except `keep`; the ids that were still live."""
    ended = []
    for sid in repo.user_session_ids(tr, tid, uid):
        session = repo.get_session(tr, tid, sid)
        if session is not None and sid != keep and revoke(tr, session, now=now, reason=reason):
            ended.append(sid)
    return ended


def set_role(tr: Transaction, tid: str, uid: str, role: Role) -> None:
    """Carry a role change into every live marker of the user: effective on the next request."""
    for sid in repo.user_session_ids(tr, tid, uid):
        if repo.read_live(tr, tid, sid, snapshot=False) is not None:  # a racing logout must win
            repo.set_live(tr, tid, sid, uid, role)


def purge_expired(
    tr: Transaction, tid: str, uid: str, *, now: float, settings: Settings, pepper: bytes
) -> int:
    """Delete the user's sessions past their absolute lifetime.

    Their digests cannot be recomputed (nothing stored derives a token): a digest left behind
    finds no session (`not_found`) and the gc job's refresh sweep deletes it. `pepper` is unused
    and kept for callers."""
    del pepper
    purged = 0
    for sid in repo.user_session_ids(tr, tid, uid):
        session = repo.get_session(tr, tid, sid)
        if session is None or now < session.created_at + settings.refresh_absolute_ttl:
            continue
        repo.delete_session(tr, session)
        purged += 1
    return purged


Outcome = Literal["rotated", "grace", "reused", "not_found", "expired", "revoked", "rate_limited"]


@dataclass(frozen=True)
class Redeemed:
    outcome: Outcome
    user: UserRecord | None = None
    session: AuthSessionRecord | None = None
    refresh_token: str | None = None
    retry_after: float = 0.0


@dataclass(frozen=True)
class RequestInfo:
    """Who asked, for audit events; `event_id` is drawn outside the retry loop."""

    request_id: str
    ip: str
    event_id: str


def redeem(
    tr: Transaction,
    *,
    digest: bytes | None,
    presented: str,
    pepper: bytes,
    now: float,
    settings: Settings,
    policy: ratelimit.Policy,
    info: RequestInfo,
) -> Redeemed:
    """Spend the `presented` refresh token (found by its `digest`): rotate, replay the successor
    in grace, or detect reuse. The successor is derived from `presented` (never from the store)."""
    decision = ratelimit.hit(tr, policy, info.ip, now)
    if not decision.allowed:
        return Redeemed("rate_limited", retry_after=decision.retry_after)
    found = None if digest is None else repo.lookup_refresh(tr, digest)
    if found is None:
        return Redeemed("not_found")  # forged, random or purged: nothing changes
    tid, sid, generation = found
    session = repo.get_session(tr, tid, sid)
    if session is None:
        return Redeemed("not_found")
    if session.revoked_at is not None:
        return Redeemed("revoked")
    if (
        now >= session.created_at + settings.refresh_absolute_ttl
        or now >= session.last_used_at + settings.refresh_idle_ttl
    ):
        return Redeemed("expired")
    user = repo.get_user(tr, tid, session.user_id)
    if user is None or user.disabled:
        return Redeemed("revoked")

    def event(outcome: audit.Outcome, reason: str | None, type: str = "refresh") -> None:
        audit.record(
            tr,
            tid,
            type=type,
            actor_id=user.id,
            session_id=sid,
            request_id=info.request_id,
            ip=info.ip,
            outcome=outcome,
            reason=reason,
            event_id=info.event_id,
            at=now,
        )

    following = tokens.successor(pepper, session_id=sid, presented=presented)
    if generation == session.generation:
        rotated = session.model_copy(
            update={"generation": generation + 1, "rotated_at": now, "last_used_at": now}
        )
        repo.put_session(tr, rotated, session)
        _index(tr, pepper, rotated, following, rotated.generation)
        event("success", None)
        return Redeemed("rotated", user, rotated, following)
    in_grace = session.rotated_at is not None and now - session.rotated_at <= settings.refresh_grace_seconds
    if generation == session.generation - 1 and in_grace:
        # The client (or a racing tab, or our own retried commit) already spent it: same answer,
        # derived again from the very token presented.
        event("success", "grace")
        return Redeemed("grace", user, session, following)
    revoke(tr, session, now=now, reason="refresh_token_reused")
    event("failure", "refresh_token_reused", type="refresh_token_reuse")
    return Redeemed("reused", user, session)
