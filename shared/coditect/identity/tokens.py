"""Refresh and invite tokens: how they are made, and the only form in which the store holds them.

Refresh tokens — one *family* per login session
-----------------------------------------------
A login session stores a random 256-bit `family_nonce` (from `secrets`, drawn outside any
transaction) and a `generation` counter. Token number *g* of the family is

    family_key = HMAC-SHA256(pepper, "coditect-refresh-family\\0" ‖ nonce)
    token(g)   = "crt_" ‖ base64url(HMAC-SHA256(family_key, "gen\\0" ‖ sid ‖ g))

so the server can *recompute* the current successor instead of storing it: presenting the
just-spent token again within the grace window returns the identical string, and a transaction
body that runs twice (`commit_unknown_result`) derives the same token both times. The store
holds only `digest(token) = HMAC-SHA256(pepper, "coditect-refresh-digest\\0" ‖ token)` as the
key of the token-digest index, never a token, and the nonce alone derives nothing without the
pepper. The pepper is a 32-byte secret *file* beside the signing keys (`token-pepper.secret`,
mode 0600), mounted only into the functions that mint or redeem refresh tokens; it is created
on first use where the key directory is writable (the local stack) and must be provisioned in
the Secret elsewhere. It is never logged and never leaves this module.

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
import struct
from pathlib import Path

from coditect.identity.signing_keys import KeyRingError

REFRESH_PREFIX = "crt_"
INVITE_PREFIX = "cit_"
PEPPER_BYTES = 32
_REFRESH_SHAPE = re.compile(r"crt_[A-Za-z0-9_-]{43}")
_INVITE_SHAPE = re.compile(r"cit_[A-Za-z0-9_-]{43}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_family_nonce() -> str:
    """A fresh family secret (hex of 32 bytes from `secrets`); call outside transactions."""
    return secrets.token_hex(32)


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


def refresh_token(pepper: bytes, *, session_id: str, family_nonce: str, generation: int) -> str:
    """Token number `generation` of the family (deterministic; see the module docstring)."""
    family_key = hmac.new(pepper, b"coditect-refresh-family\x00" + bytes.fromhex(family_nonce), "sha256")
    message = b"gen\x00" + session_id.encode("ascii") + struct.pack(">Q", generation)
    return REFRESH_PREFIX + _b64(hmac.new(family_key.digest(), message, "sha256").digest())


def refresh_digest(pepper: bytes, token: str) -> bytes | None:
    """The keyed digest indexing `token`, or None when it cannot be one of ours (no store read)."""
    if not isinstance(token, str) or not _REFRESH_SHAPE.fullmatch(token):
        return None
    return hmac.new(pepper, b"coditect-refresh-digest\x00" + token.encode("ascii"), "sha256").digest()


def invite_digest(token: str) -> bytes | None:
    if not isinstance(token, str) or not _INVITE_SHAPE.fullmatch(token):
        return None
    return hashlib.sha256(b"coditect-invite\x00" + token.encode("ascii")).digest()
