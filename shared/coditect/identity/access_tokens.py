"""Access tokens: short-lived JWTs signed with Ed25519 (``EdDSA``), verified against our key ring.

Header ``{"alg": "EdDSA", "kid": <kid>, "typ": "at+jwt"}`` (RFC 9068's type, so an ID token or
any other JWT cannot be replayed as an access token). Claims: ``iss aud sub tid sid jti iat nbf
exp role``; ``sub`` is the user id, ``tid`` the tenant, ``sid`` the login session (checked for
revocation by the auth middleware on every request, not here).

Verification is deliberately narrower than what PyJWT allows by default: the algorithm is
pinned, only the ``alg``/``kid``/``typ`` header parameters are accepted (so ``jku``, ``x5u``,
``jwk``, ``x5c`` and ``crit`` are refused, never followed), the ``kid`` resolves only in our own
ring, every claim is required with its exact type, ``iss`` and ``aud`` match exactly, and the
lifetime may not exceed `MAX_ACCESS_TOKEN_TTL`. Time is checked here, not by PyJWT, so that an
injected clock (``now``) governs issue and verify alike.

Every failure raises `Unauthorized`: ``token_expired`` only for a genuine token whose time is up,
``token_invalid`` for everything else. Messages never carry the underlying exception's text.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

from coditect.errors import Unauthorized
from coditect.identity.signing_keys import KeyRing

ALGORITHM = "EdDSA"
HEADER_TYP = "at+jwt"
MAX_ACCESS_TOKEN_TTL = 900  # seconds; keys.py's rotation runbook waits this plus MAX_LEEWAY
MAX_LEEWAY = 30  # seconds of clock skew tolerated between functions
ROLES = frozenset({"owner", "admin", "member"})
REQUIRED_CLAIMS = ("iss", "aud", "sub", "tid", "sid", "jti", "iat", "nbf", "exp", "role")
_ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})
# Our tokens are ~600 bytes; a bound keeps junk from costing parse time.
_MAX_TOKEN_LENGTH = 4096
# Compact serialisation only: no JSON serialisation, no detached (empty) payload, no whitespace.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

Role = Literal["owner", "admin", "member"]


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token (times are integer seconds since the epoch)."""

    iss: str
    aud: str
    sub: str  # user id
    tid: str  # tenant id
    sid: str  # login session id
    jti: str
    iat: int
    nbf: int
    exp: int
    role: Role


def _canonical_uuid(value: object) -> str | None:
    """The lowercase hyphenated form if `value` is exactly that, else None."""
    if not isinstance(value, str):
        return None
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        return None
    return canonical if canonical == value else None


def issue_access_token(
    ring: KeyRing,
    *,
    issuer: str,
    audience: str,
    user_id: str | uuid.UUID,
    tenant_id: str | uuid.UUID,
    session_id: str | uuid.UUID,
    role: str,
    ttl_seconds: int = MAX_ACCESS_TOKEN_TTL,
    now: float | None = None,
) -> tuple[str, AccessClaims]:
    """Sign a new access token with the ring's active key; returns the token and its claims.

    Raises ValueError for arguments no valid token could carry, and `KeyRingError` when the
    ring cannot sign (a verify-only function).
    """
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ValueError("ttl_seconds must be an integer")
    if not 1 <= ttl_seconds <= MAX_ACCESS_TOKEN_TTL:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_ACCESS_TOKEN_TTL}")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not (issuer and audience):
        raise ValueError("issuer and audience must be non-empty")
    ids: dict[str, str] = {}
    for name, value in (("user_id", user_id), ("tenant_id", tenant_id), ("session_id", session_id)):
        # Accept any UUID spelling from callers, but always sign the canonical form.
        try:
            ids[name] = str(uuid.UUID(str(value)))
        except ValueError:
            raise ValueError(f"{name} must be a UUID") from None
    signing = ring.signing_key()
    issued_at = int(time.time() if now is None else now)
    claims = AccessClaims(
        iss=issuer,
        aud=audience,
        sub=ids["user_id"],
        tid=ids["tenant_id"],
        sid=ids["session_id"],
        jti=str(uuid.uuid4()),
        iat=issued_at,
        nbf=issued_at,
        exp=issued_at + ttl_seconds,
        role=cast(Role, role),
    )
    token = jwt.encode(
        dataclasses.asdict(claims),
        signing.private_key,
        algorithm=ALGORITHM,
        headers={"kid": signing.kid, "typ": HEADER_TYP},
    )
    return token, claims


def _invalid() -> Unauthorized:
    return Unauthorized("The access token is invalid.", code="token_invalid")


def _decode(ring: KeyRing, token: object, *, issuer: str, audience: str) -> dict[str, Any]:
    """Check the header, resolve the kid in our ring and verify the signature; the raw payload."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or not _COMPACT.fullmatch(token):
        raise _invalid()
    try:
        header = jwt.get_unverified_header(token)
        if not set(header) <= _ALLOWED_HEADER or header.get("alg") != ALGORITHM:
            raise _invalid()
        if header.get("typ") != HEADER_TYP:
            raise _invalid()
        key = ring.public_key(header.get("kid"))
        if key is None:
            raise _invalid()
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                # Checked in check_time with the injected clock.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        # Junk can surface as ValueError/TypeError from base64 or JSON parsing in PyJWT.
        raise _invalid() from None
    return payload


def _claims(payload: dict[str, Any], *, issuer: str, audience: str) -> AccessClaims:
    """Type-check every claim; PyJWT checked presence, we also check shape and exact values."""
    strings = {name: payload.get(name) for name in ("iss", "aud", "role")}
    ids = {name: _canonical_uuid(payload.get(name)) for name in ("sub", "tid", "sid", "jti")}
    times = {name: payload.get(name) for name in ("iat", "nbf", "exp")}
    if strings["iss"] != issuer or strings["aud"] != audience:
        raise _invalid()
    role = strings["role"]
    # isinstance first: a JSON list or object is unhashable and would raise TypeError here.
    if not isinstance(role, str) or role not in ROLES:
        raise _invalid()
    if any(value is None for value in ids.values()):
        raise _invalid()
    # bool is an int subclass; floats are legal NumericDates but we never issue them.
    if any(isinstance(value, bool) or not isinstance(value, int) for value in times.values()):
        raise _invalid()
    return AccessClaims(
        iss=issuer,
        aud=audience,
        sub=cast(str, ids["sub"]),
        tid=cast(str, ids["tid"]),
        sid=cast(str, ids["sid"]),
        jti=cast(str, ids["jti"]),
        iat=cast(int, times["iat"]),
        nbf=cast(int, times["nbf"]),
        exp=cast(int, times["exp"]),
        role=cast(Role, role),
    )


def check_time(claims: AccessClaims, *, now: float, leeway: float) -> None:
    """Same boundaries as PyJWT: expired once ``exp <= now - leeway``; early if ``> now + leeway``.
    Also run on every hit of the middleware's verified-token cache (identity.middleware)."""
    # A token can never outlive MAX_ACCESS_TOKEN_TTL: key retirement relies on it.
    if not claims.iat <= claims.nbf < claims.exp <= claims.iat + MAX_ACCESS_TOKEN_TTL:
        raise _invalid()
    if claims.iat > now + leeway or claims.nbf > now + leeway:
        raise _invalid()
    if claims.exp <= now - leeway:
        raise Unauthorized("The access token has expired.", code="token_expired")


def verify_access_token(
    ring: KeyRing,
    token: str,
    *,
    issuer: str,
    audience: str,
    leeway: float = MAX_LEEWAY,
    now: float | None = None,
) -> AccessClaims:
    """Verify an access token against our ring and return its claims; raise `Unauthorized`.

    `leeway` above `MAX_LEEWAY` (or negative) is a programming error: ValueError.
    """
    if not 0 <= leeway <= MAX_LEEWAY:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
    payload = _decode(ring, token, issuer=issuer, audience=audience)
    claims = _claims(payload, issuer=issuer, audience=audience)
    check_time(claims, now=time.time() if now is None else now, leeway=leeway)
    return claims
