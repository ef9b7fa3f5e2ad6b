"""The authentication middleware: the only way any function learns who is calling.

    authenticate(call) -> TenantContext          (resolved by coditect.http at AUTHENTICATOR)

1. `Authorization: Bearer <token>` (exactly that scheme; anything else is `token_invalid`,
   nothing at all is `token_missing`).
2. The access token is verified by `coditect.identity.access_tokens` against the process's
   verify-only key ring (public keys only; reloaded for an unknown kid, rate-limited).
3. One point read of the session's live marker `tenant(tid)/live/<sid>`: absent means the
   session was logged out, revoked by reuse detection, a password change or deletion, or the
   user was disabled — 401 `session_revoked`. Its value carries the user's *current* role, which
   the context uses (a demotion takes effect on the next request, not at token expiry).

A bearer token starting with `WORKSPACE_CREDENTIAL_PREFIX` is a workspace credential (the sync
agent's), checked by `coditect.workspaces.credentials` instead: it never reaches the JWT path.

Every failure raises `Unauthorized`, which the runtime renders as 401 with
`WWW-Authenticate: Bearer error="invalid_token"`. Token text never reaches a log or a message.
"""

from __future__ import annotations

from typing import cast

import jwt

from coditect.config import Settings
from coditect.errors import Unauthorized
from coditect.http.call import Call
from coditect.identity import clock, keyring
from coditect.identity import repository as repo
from coditect.identity.access_tokens import MAX_LEEWAY, AccessClaims, check_time, verify_access_token
from coditect.identity.context import TenantContext, mint
from coditect.identity.signing_keys import KeyRing, is_valid_kid
from coditect.store import Database, Transaction

# Logging out twice answers 204 twice: this route alone accepts a revoked session's token
# (its handler can only revoke, which is idempotent).
LOGOUT_ROUTE = "auth.logout"
_MAX_TOKEN = 4096
WORKSPACE_CREDENTIAL_PREFIX = "cwc_"  # coditect.workspaces.credentials.PREFIX (kept in step by a test)


def bearer_token(call: Call) -> str:
    header = call.request.headers.get("Authorization")
    if header is None or not header.strip():
        raise Unauthorized("An access token is required.", code="token_missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN:
        raise Unauthorized("The access token is invalid.", code="token_invalid")
    return token


def _kid(token: str) -> object:
    """The unverified header's kid, only to decide whether the key ring needs a reload."""
    try:
        return jwt.get_unverified_header(token).get("kid")
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


# Verified tokens, by exact token string, with the ring that verified them. A client sends the
# same access token for up to 15 minutes, and PyJWT's parsing dominates a request's cost, so a
# hit skips the signature check but never the time checks (redone with the current clock) nor
# the revocation read. A reloaded ring (a retired key) invalidates every entry it did not verify.
_VERIFIED: dict[str, tuple[KeyRing, AccessClaims]] = {}
_VERIFIED_MAX = 4096


def _cached(token: str, ring: KeyRing, settings: Settings) -> AccessClaims | None:
    hit = _VERIFIED.get(token)
    if hit is None or hit[0] is not ring:
        return None
    claims = hit[1]
    if claims.iss != settings.issuer or claims.aud != settings.audience:
        return None
    check_time(claims, now=clock.now(), leeway=MAX_LEEWAY)  # the same boundaries as a full verification
    return claims


def _remember(token: str, ring: KeyRing, claims: AccessClaims) -> AccessClaims:
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()  # crude but bounded; a miss only costs one verification
    _VERIFIED[token] = (ring, claims)
    return claims


def _verify(call: Call, token: str) -> AccessClaims:
    """Verify with the cached ring; only a token refused for an unknown kid triggers a reload.

    The kid is not parsed up front: PyJWT's parsing dominates the cost of a request, and the
    common case (a kid the ring knows) needs no peek at all.
    """
    settings = call.settings
    ring = keyring.verifier(settings)
    cached = _cached(token, ring, settings)
    if cached is not None:
        return cached

    def verify(with_ring: KeyRing) -> AccessClaims:
        claims = verify_access_token(
            with_ring, token, issuer=settings.issuer, audience=settings.audience, now=clock.now()
        )
        return _remember(token, with_ring, claims)

    try:
        return verify(ring)
    except Unauthorized as exc:
        if exc.code != "token_invalid":
            raise
        kid = _kid(token)
        if not is_valid_kid(kid) or ring.public_key(kid) is not None:
            raise
        reloaded = keyring.verifier(settings, kid)  # rate-limited: may return the same ring
        if reloaded is ring or reloaded.public_key(kid) is None:
            raise
        return verify(reloaded)


class _PointRead:
    """`repo.read_live`'s one `get` answered by `Database.read`: a transaction of exactly that one
    read (what `db.transact(repo.read_live, …)` ran, without a Transaction object and commit)."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        return self.db.read(key)


def authenticate(call: Call) -> TenantContext:
    token = bearer_token(call)
    if token.startswith(WORKSPACE_CREDENTIAL_PREFIX):
        # A sync agent's workspace credential: its own checks, its own few routes (never a JWT).
        from coditect.workspaces import credentials

        return credentials.authenticate(
            call.db, token, call.route.name, call.params, request_id=call.request_id
        )
    claims = _verify(call, token)
    # Never cached: the revocation read happens on every request.
    live = repo.read_live(cast(Transaction, _PointRead(call.db)), claims.tid, claims.sid)
    if live is None or live[0] != claims.sub:
        if live is None and call.route.name == LOGOUT_ROUTE:
            return mint(tenant_id=claims.tid, user_id=claims.sub, session_id=claims.sid, role=claims.role)
        raise Unauthorized("The login session has been revoked.", code="session_revoked")
    return mint(tenant_id=claims.tid, user_id=claims.sub, session_id=claims.sid, role=live[1])
