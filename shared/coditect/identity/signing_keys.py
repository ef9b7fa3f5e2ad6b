"""The Ed25519 key ring that signs and verifies access tokens, read from a directory of PEM files.

The directory is a mounted Kubernetes Secret (the local stack uses a folder in its data dir)::

    <dir>/<kid>.pub   SubjectPublicKeyInfo PEM: a published key; tokens it signed verify
    <dir>/<kid>.key   PKCS#8 PEM, unencrypted, mode 0600: a private key (signers only)
    <dir>/active      the kid that signs new tokens

Only register, login and refresh mount the private keys; every other function mounts the ``.pub``
files alone (a Secret projection with ``items``) and gets a verify-only ring (``can_sign`` is
False). A kid is 1-64 characters of ``[A-Za-z0-9_-]``: it names a file, so it can never be a path.
Hidden entries (Kubernetes' ``..data`` symlinks) are ignored.

Key rotation runbook
--------------------
Functions read the ring at cold start, so "wait" below means: until every revision of every
function that reads this Secret has restarted with the new contents (roll them out).

1. Publish: ``generate_key(dir, activate=False)`` in a scratch copy, add the new ``<new>.pub``
   (and ``<new>.key``, for signers) to the Secret; roll out. Verifiers now accept the new key, and
   ``GET /api/v5/auth/jwks`` lists it, before a single token is signed with it.
2. Switch: write ``<new>`` into ``active``; roll out the signers. New tokens carry ``kid: <new>``;
   tokens signed by the old key keep verifying because ``<old>.pub`` is still published.
3. Retire: wait at least the longest access-token lifetime plus the verification leeway
   (900 s + 30 s; see ``coditect.identity.access_tokens``) after the last signer switched, then delete
   ``<old>.key`` and ``<old>.pub`` and roll out. Tokens signed by the old key now fail, and none
   is still unexpired.

A compromised key skips step 3's wait: delete it at once, which logs out every holder of a token
it signed (their refresh tokens still work, so clients just refresh).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ACTIVE_FILE = "active"
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KeyRingError(Exception):
    """The key directory is missing or inconsistent, or a verify-only ring was asked to sign.

    A deployment error, not a client's: it is raised at cold start (fail fast) or becomes a 500.
    """


def is_valid_kid(kid: object) -> TypeGuard[str]:
    """True for a string usable as a kid (and therefore as a file name)."""
    return isinstance(kid, str) and _KID.fullmatch(kid) is not None


@dataclass(frozen=True)
class SigningKey:
    """The active private key and its kid."""

    kid: str
    private_key: Ed25519PrivateKey


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class KeyRing:
    """Every published public key by kid, plus the active private key when this process signs."""

    def __init__(self, public_keys: dict[str, Ed25519PublicKey], signing: SigningKey | None = None) -> None:
        if not public_keys:
            raise KeyRingError("the key ring has no public keys")
        if signing is not None:
            published = public_keys.get(signing.kid)
            # Signing with a key verifiers do not have would issue tokens that fail everywhere.
            if published is None or _raw(published) != _raw(signing.private_key.public_key()):
                raise KeyRingError(f"the active key {signing.kid!r} is not published as {signing.kid}.pub")
        self._public = dict(public_keys)
        self._signing = signing

    @classmethod
    def load(cls, directory: Path, *, public_only: bool = False) -> KeyRing:
        """Read every ``<kid>.pub`` and, if present, the active ``<kid>.key`` from `directory`.

        `public_only` (verifiers): a verify-only ring; private key files are not even opened, so a
        function that mounts one by accident still never loads it."""
        if not directory.is_dir():
            raise KeyRingError(f"key directory {directory} does not exist")
        public: dict[str, Ed25519PublicKey] = {}
        suffixes = (".pub",) if public_only else (".pub", ".key")
        for path in sorted(directory.iterdir()):
            if path.name.startswith(".") or path.suffix not in suffixes:
                continue
            if not is_valid_kid(path.stem):
                raise KeyRingError(f"key file {path.name!r} does not have a valid kid as its name")
            if path.suffix == ".pub":
                public[path.stem] = _load_public(path)
        if public_only:
            return cls(public)
        active = _read_active(directory)
        signing = None
        if active is not None:
            key_path = directory / f"{active}.key"
            if key_path.exists():
                signing = SigningKey(active, _load_private(key_path))
            elif active not in public:
                raise KeyRingError(f"the active key {active!r} is not published as {active}.pub")
        return cls(public, signing)

    @property
    def can_sign(self) -> bool:
        """True when this ring holds the active private key."""
        return self._signing is not None

    @property
    def kids(self) -> list[str]:
        """The published kids, sorted."""
        return sorted(self._public)

    def signing_key(self) -> SigningKey:
        """The active key; raises KeyRingError in a verify-only ring."""
        if self._signing is None:
            raise KeyRingError("this key ring has no active private key; it can only verify")
        return self._signing

    def public_key(self, kid: object) -> Ed25519PublicKey | None:
        """The published key for `kid`, or None (also for a non-string or malformed kid)."""
        if not is_valid_kid(kid):
            return None
        return self._public.get(kid)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of every published key (RFC 8037 OKP); public material only."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": base64.urlsafe_b64encode(_raw(key)).rstrip(b"=").decode("ascii"),
                    "kid": kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
                for kid, key in sorted(self._public.items())
            ]
        }


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyRingError(f"{path.name} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyRingError(f"{path.name} is not an Ed25519 key")
    return key


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Never chain the parser's message: it could quote key material into a log.
        raise KeyRingError(f"{path.name} is not an unencrypted PKCS#8 PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyRingError(f"{path.name} is not an Ed25519 key")
    return key


def _read_active(directory: Path) -> str | None:
    path = directory / ACTIVE_FILE
    if not path.exists():
        return None
    kid = path.read_text(encoding="utf-8").strip()
    if not is_valid_kid(kid):
        raise KeyRingError(f"{path} does not hold a valid kid")
    return kid


def _create_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with exactly `mode`; never overwrite (a key is never replaced in place)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # os.open's mode is filtered by the umask; set it exactly.
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _write_active(directory: Path, kid: str, *, replace: bool) -> None:
    """Point `active` at `kid` atomically: readers see the old or the new kid, never half a file.

    With ``replace=False`` it only creates `active` and raises FileExistsError if another process
    created it first (``os.link`` fails on an existing target, unlike ``os.replace``).
    """
    tmp = directory / f".{ACTIVE_FILE}.{secrets.token_hex(8)}.tmp"
    _create_file(tmp, f"{kid}\n".encode("ascii"), 0o644)
    try:
        if replace:
            os.replace(tmp, directory / ACTIVE_FILE)
        else:
            os.link(tmp, directory / ACTIVE_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def generate_key(directory: Path, kid: str | None = None, activate: bool = True) -> str:
    """Create a new key pair in `directory` (private file mode 0600) and return its kid.

    With ``activate=False`` the key is published but does not sign (rotation step 1).
    """
    if kid is None:
        kid = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
    if not is_valid_kid(kid):
        raise ValueError(f"invalid kid {kid!r}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, pub_path = directory / f"{kid}.key", directory / f"{kid}.pub"
    if key_path.exists() or pub_path.exists():
        raise FileExistsError(f"a key named {kid!r} already exists in {directory}")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Private first: once the .pub appears, a signer switching to this kid finds its key.
    _create_file(key_path, private_pem, 0o600)
    _create_file(pub_path, public_pem, 0o644)
    if activate:
        _write_active(directory, kid, replace=True)
    return kid


def ensure_keys(directory: Path) -> None:
    """Create and activate a key pair if `directory` has no active key (local stack, first start).

    Safe when several processes start at once: exactly one key becomes active and the losers
    withdraw the keys they generated.
    """
    if (directory / ACTIVE_FILE).exists():
        return
    kid = generate_key(directory, activate=False)
    try:
        _write_active(directory, kid, replace=False)
    except FileExistsError:
        (directory / f"{kid}.pub").unlink()
        (directory / f"{kid}.key").unlink()
