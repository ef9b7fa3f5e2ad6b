"""Refresh and invite tokens: how they are made, and the only form in which the store holds them.

Refresh tokens — one *family* per login session, a hash chain
-------------------------------------------------------------
The first token of a login session is 256 random bits (from `secrets`, drawn outside any
transaction). Every successor is derived from the token presented to obtain it:

    token(g + 1) = "crt_" ‖ base64url(HMAC-SHA256(pepper, "coditect-refresh-next\\0" ‖ sid ‖ "\\0" ‖ token(g)))

so the server can *recompute* the successor instead of storing it: presenting the just-spent
token again within the grace window returns the identical string, and a transaction body that
runs twice (`commit_unknown_result`) derives the same token both times. Nothing stored derives a
live token: the store holds only `digest(token) = HMAC-SHA256(pepper, "coditect-refresh-digest\\0"
‖ token)` as the key of the token-digest index (a one-way function of the token), so whoever reads
the whole store AND the pepper still cannot mint the live token of any family — they would need
a token the client holds. (Records written before this scheme carry a `family_nonce`; it is no
longer read: their live tokens rotate into the chain on their next refresh.) The pepper is a
32-byte secret *file* beside the signing keys (`token-pepper.secret`, mode 0600), mounted only
into the functions that mint or redeem refresh tokens; it is created on first use where the key
directory is writable (the local stack) and must be provisioned in the Secret elsewhere. It is
never logged and never leaves this module.

Invite tokens are plain random 256-bit strings; the store keeps their SHA-256 (unkeyed, so the
tenant function, which holds no secrets, can create them: a 256-bit random value cannot be
recovered from its hash).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from coditect.identity.signing_keys import KeyRingError

REFRESH_PREFIX = "crt_"
INVITE_PREFIX = "cit_"
PEPPER_BYTES = 32
_REFRESH_SHAPE = re.compile(r"crt_[A-Za-z0-9_-]{43}")
_INVITE_SHAPE = re.compile(r"cit_[A-Za-z0-9_-]{43}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_refresh_token() -> str:
    """The first token of a new family: 256 random bits; call outside transactions."""
    return REFRESH_PREFIX + _b64(secrets.token_bytes(32))


def new_invite_token() -> str:
    return INVITE_PREFIX + _b64(secrets.token_bytes(32))


def ensure_pepper(path: Path) -> None:
    """Create the pepper file (0600) unless it exists; safe when processes race (one wins)."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_bytes(PEPPER_BYTES))
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process won: theirs is the pepper
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=8)
def load_pepper(path: Path) -> bytes:
    """The pepper at `path`, created first when missing (cached per process and path)."""
    try:
        ensure_pepper(path)
        pepper = path.read_bytes()
    except OSError:
        raise KeyRingError(f"the token pepper {path} is missing and cannot be created") from None
    if len(pepper) < PEPPER_BYTES:
        raise KeyRingError(f"the token pepper {path} is shorter than {PEPPER_BYTES} bytes")
    return pepper


def successor(pepper: bytes, *, session_id: str, presented: str) -> str:
    """The token that replaces `presented` (deterministic; see the module docstring)."""
    message = b"coditect-refresh-next\x00" + session_id.encode("ascii") + b"\x00" + presented.encode("ascii")
    return REFRESH_PREFIX + _b64(hmac.new(pepper, message, "sha256").digest())


def refresh_digest(pepper: bytes, token: str) -> bytes | None:
    """The keyed digest indexing `token`, or None when it cannot be one of ours (no store read)."""
    if not isinstance(token, str) or not _REFRESH_SHAPE.fullmatch(token):
        return None
    return hmac.new(pepper, b"coditect-refresh-digest\x00" + token.encode("ascii"), "sha256").digest()


def invite_digest(token: str) -> bytes | None:
    if not isinstance(token, str) or not _INVITE_SHAPE.fullmatch(token):
        return None
    return hashlib.sha256(b"coditect-invite\x00" + token.encode("ascii")).digest()
