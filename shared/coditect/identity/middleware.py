"""The authentication middleware: the only way any function learns who is calling.

    authenticate(call) -> TenantContext          (resolved by coditect.http at AUTHENTICATOR)

1. `Authorization: Bearer <token>` (exactly that scheme; anything else is `token_invalid`,
   nothing at all is `token_missing`).
2. The access token is verified by `coditect.auth.access_tokens` against the process's
   verify-only key ring (public keys only; reloaded for an unknown kid, rate-limited).
3. One point read of the session's live marker `tenant(tid)/live/<sid>`: absent means the
   session was logged out, revoked by reuse detection, a password change or deletion, or the
   user was disabled — 401 `session_revoked`. Its value carries the user's *current* role, which
   the context uses (a demotion takes effect on the next request, not at token expiry).

Every failure raises `Unauthorized`, which the runtime renders as 401 with
`WWW-Authenticate: Bearer error="invalid_token"`. Token text never reaches a log or a message.
"""

from __future__ import annotations

import jwt

from coditect.auth.access_tokens import verify_access_token
from coditect.auth.context import TenantContext, mint
from coditect.errors import Unauthorized
from coditect.http.call import Call
from coditect.identity import clock, keyring
from coditect.identity import repositories as repo

# Logging out twice answers 204 twice: this route alone accepts a revoked session's token
# (its handler can only revoke, which is idempotent).
LOGOUT_ROUTE = "auth.logout"
_MAX_TOKEN = 4096


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


def authenticate(call: Call) -> TenantContext:
    token = bearer_token(call)
    settings = call.settings
    ring = keyring.verifier(settings, _kid(token))
    claims = verify_access_token(
        ring, token, issuer=settings.issuer, audience=settings.audience, now=clock.now()
    )
    live = call.db.transact(repo.read_live, claims.tid, claims.sid)
    if live is None or live[0] != claims.sub:
        if live is None and call.route.name == LOGOUT_ROUTE:
            return mint(tenant_id=claims.tid, user_id=claims.sub, session_id=claims.sid, role=claims.role)
        raise Unauthorized("The login session has been revoked.", code="session_revoked")
    return mint(tenant_id=claims.tid, user_id=claims.sub, session_id=claims.sid, role=live[1])
