"""Register and login: the two ways to get a login session, guarded by throttles before hashing.

Each runs as: (1) a short transaction that counts the attempt in the rate limiters and reads
what the decision needs; (2) Argon2 outside any transaction; (3) a transaction that writes the
outcome with ids and secrets drawn before it (so a retried body writes the same thing).

Login failures are indistinguishable: unknown email, wrong password, disabled user and a
throttled account or IP all raise the same `invalid_credentials` (same status, body apart from
the request id, and headers); an unknown email costs one dummy Argon2 verify like a known one.
A throttled attempt costs no Argon2 at all: that is the throttle's purpose.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from coditect import audit, ratelimit
from coditect.config import Settings
from coditect.errors import Conflict, RateLimited, Unauthorized, ValidationFailed, raise_returned
from coditect.identity import clock, hashing, keyring, throttle, tokens
from coditect.identity import login_sessions as ls
from coditect.identity import repository as repo
from coditect.identity.access_tokens import issue_access_token
from coditect.identity.models import (
    AuthOut,
    InviteRecord,
    LoginBody,
    RegisterBody,
    TenantOut,
    TenantRecord,
    TokensOut,
    UserOut,
    UserRecord,
    email_key,
)
from coditect.identity.passwords import check_password_policy
from coditect.origin import Origin
from coditect.store import Database, Transaction

log = logging.getLogger("coditect.identity")


def invalid_credentials() -> Unauthorized:
    return Unauthorized("Invalid email or password.", code="invalid_credentials")


def issue_tokens(
    settings: Settings, user: UserRecord, session_id: str, refresh_token: str, now: float
) -> TokensOut:
    """A fresh access token (signing ring) beside the given refresh token."""
    access, _ = issue_access_token(
        keyring.signer(settings),
        issuer=settings.issuer,
        audience=settings.audience,
        user_id=user.id,
        tenant_id=user.tenant_id,
        session_id=session_id,
        role=user.role,
        ttl_seconds=settings.access_token_ttl,
        now=now,
    )
    return TokensOut(access_token=access, refresh_token=refresh_token, expires_in=settings.access_token_ttl)


def pepper_of(settings: Settings) -> bytes:
    return tokens.load_pepper(settings.token_pepper_file)


# -- register ---------------------------------------------------------------------------------------
def _email_taken() -> Conflict:
    return Conflict("This email is already registered.", code="email_taken")


def _invite_invalid() -> ValidationFailed:
    return ValidationFailed(
        "The invite is not valid.",
        code="invite_invalid",
        details=[{"loc": ["body", "invite_token"], "type": "invite_invalid"}],
    )


def _usable(invite: InviteRecord | None, ekey: str, now: float) -> bool:
    return (
        invite is not None
        and invite.used_at is None
        and now < invite.expires_at
        and invite.email_key in (None, ekey)
    )


@dataclass(frozen=True)
class _Plan:
    """What register decided before hashing."""

    tenant_id: str
    tenant_name: str
    role: str
    invite_id: str | None


def register(db: Database, settings: Settings, origin: Origin, body: RegisterBody) -> AuthOut:
    """A new user (and tenant, unless `body` carries an invite) with a first login session."""
    now = clock.now()
    ekey = email_key(body.email)
    invite_digest = None if body.invite_token is None else tokens.invite_digest(body.invite_token)
    if body.invite_token is not None and invite_digest is None:
        raise _invite_invalid()
    new_tenant_id = str(uuid.uuid4())

    def precheck(tr: Transaction) -> _Plan | RateLimited | Conflict | ValidationFailed:
        # Refusals are returned, not raised, so that the rate-limit strike commits with them.
        decision = ratelimit.hit(tr, throttle.register_ip(settings), origin.ip, now)
        if not decision.allowed:
            return RateLimited(decision.retry_after)
        if repo.email_owner(tr, ekey) is not None:
            return _email_taken()
        if invite_digest is None:
            name = body.tenant_name or f"{body.name}'s workspace"[:200]
            return _Plan(new_tenant_id, name, "owner", None)
        invite = repo.lookup_invite(tr, invite_digest)
        if invite is None or not _usable(invite, ekey, now):
            return _invite_invalid()
        tenant = repo.get_tenant(tr, invite.tenant_id)
        if tenant is None:
            return _invite_invalid()
        return _Plan(tenant.id, tenant.name, invite.role, invite.id)

    plan = raise_returned(db.transact(precheck))
    check_password_policy(body.password, email=body.email, tenant_name=plan.tenant_name, name=body.name)
    password_hash = hashing.passwords(settings).hash(body.password)
    pepper = pepper_of(settings)
    user = UserRecord(
        id=str(uuid.uuid4()),
        tenant_id=plan.tenant_id,
        email=body.email,
        email_key=ekey,
        name=body.name,
        role=plan.role,  # type: ignore[arg-type]
        password_hash=password_hash,
        created_at=now,
        updated_at=now,
    )
    material = ls.Material.new()
    event_ids = (str(uuid.uuid4()), str(uuid.uuid4()))

    def create(tr: Transaction) -> tuple[TenantRecord, str]:
        owner = repo.email_owner(tr, ekey)
        if owner == (user.tenant_id, user.id):  # our own commit, retried after 1021
            session = repo.get_session(tr, user.tenant_id, material.session_id)
            tenant = repo.get_tenant(tr, user.tenant_id)
            assert session is not None and tenant is not None
            return tenant, material.first_token
        if owner is not None:
            raise _email_taken()
        if plan.invite_id is None:
            tenant = TenantRecord(id=user.tenant_id, name=plan.tenant_name, created_at=now)
            repo.put_tenant(tr, tenant)
        else:
            invite = repo.invites(user.tenant_id).get(tr, plan.invite_id)
            found = repo.get_tenant(tr, user.tenant_id)
            if invite is None or found is None or not _usable(invite, ekey, now):
                raise _invite_invalid()
            tenant = found
            repo.put_invite(tr, invite.model_copy(update={"used_at": now, "used_by": user.id}), None)
        repo.create_user(tr, user)
        session, refresh = ls.open_session(
            tr, user=user, material=material, pepper=pepper, now=now, user_agent=origin.user_agent
        )
        for event_id, kind in zip(event_ids, ("register", "invite_used"), strict=True):
            if kind == "invite_used" and plan.invite_id is None:
                continue
            audit.record(
                tr,
                user.tenant_id,
                type=kind,
                actor_id=user.id,
                session_id=session.id,
                request_id=origin.request_id,
                ip=origin.ip,
                outcome="success",
                target_id=plan.invite_id,
                event_id=event_id,
                at=now,
            )
        return tenant, refresh

    tenant, refresh = db.transact(create)
    return AuthOut(
        user=UserOut.of(user),
        tenant=TenantOut.of(tenant),
        tokens=issue_tokens(settings, user, material.session_id, refresh, now),
    )


# -- login ---------------------------------------------------------------------------------------------
def _email_hash(ekey: str) -> str:
    """How an email appears in logs: not reversible at a glance, still correlatable."""
    return hashlib.sha256(ekey.encode()).hexdigest()[:16]


def login(db: Database, settings: Settings, origin: Origin, body: LoginBody) -> AuthOut:
    """A new login session for a correct email and password; every failure is the same 401."""
    now = clock.now()
    ekey = email_key(body.email)
    account, per_ip = throttle.login_account(settings), throttle.login_ip(settings)

    def attempt(tr: Transaction) -> tuple[bool, UserRecord | None]:
        by_account = ratelimit.hit(tr, account, ekey, now)
        by_ip = ratelimit.hit(tr, per_ip, origin.ip, now)
        owner = repo.email_owner(tr, ekey)
        user = None if owner is None else repo.get_user(tr, *owner)
        return by_account.allowed and by_ip.allowed, user

    allowed, user = db.transact(attempt)
    hasher = hashing.passwords(settings)
    reason = "throttled"
    ok = False
    if allowed:
        if user is None:
            hasher.dummy_verify(body.password)
            reason = "unknown_email"
        else:
            ok = hasher.verify(user.password_hash, body.password)
            reason = "invalid_credentials" if not ok else ("user_disabled" if user.disabled else "")
            ok = ok and not user.disabled
    if not ok or user is None:
        if user is None:
            # No tenant to file it under: unknown emails go to the log only (docs/identity.md).
            log.warning(
                "login failed",
                extra={"fields": {"reason": reason, "email_hash": _email_hash(ekey), "ip": origin.ip}},
            )
        else:
            failed, failure_event = user, str(uuid.uuid4())

            def record_failure(tr: Transaction) -> None:
                audit.record(
                    tr,
                    failed.tenant_id,
                    type="login",
                    actor_id=failed.id,
                    session_id=None,
                    request_id=origin.request_id,
                    ip=origin.ip,
                    outcome="failure",
                    reason=reason,
                    event_id=failure_event,
                    at=now,
                )

            db.transact(record_failure)
        raise invalid_credentials()

    new_hash = hasher.hash(body.password) if hasher.needs_rehash(user.password_hash) else None
    pepper = pepper_of(settings)
    material = ls.Material.new()
    known, success_event = user, str(uuid.uuid4())

    def succeed(tr: Transaction) -> tuple[UserRecord, TenantRecord, str]:
        current = repo.get_user(tr, known.tenant_id, known.id)
        tenant = repo.get_tenant(tr, known.tenant_id)
        if current is None or current.disabled or tenant is None:
            raise invalid_credentials()
        if current.password_hash not in (known.password_hash, new_hash):
            raise invalid_credentials()  # the password changed after we verified the old one
        if new_hash is not None and current.password_hash == known.password_hash:
            current = current.model_copy(update={"password_hash": new_hash})
            repo.put_user(tr, current)
        ratelimit.reset(tr, account, ekey)
        ratelimit.forgive(tr, per_ip, origin.ip)
        ls.purge_expired(tr, current.tenant_id, current.id, now=now, settings=settings, pepper=pepper)
        existing = repo.get_session(tr, current.tenant_id, material.session_id)
        if existing is not None:  # our own commit, retried after 1021
            return current, tenant, material.first_token
        session, refresh = ls.open_session(
            tr, user=current, material=material, pepper=pepper, now=now, user_agent=origin.user_agent
        )
        audit.record(
            tr,
            current.tenant_id,
            type="login",
            actor_id=current.id,
            session_id=session.id,
            request_id=origin.request_id,
            ip=origin.ip,
            outcome="success",
            event_id=success_event,
            at=now,
        )
        return current, tenant, refresh

    current, tenant, refresh = db.transact(succeed)
    return AuthOut(
        user=UserOut.of(current),
        tenant=TenantOut.of(tenant),
        tokens=issue_tokens(settings, current, material.session_id, refresh, now),
    )
