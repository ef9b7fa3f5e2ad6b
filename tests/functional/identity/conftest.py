"""Helpers for identity's own functional tests (the shared `accounts` fixture is in tests/plugins)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import argon2
import jwt
import pytest

from coditect.config import get_settings
from coditect.identity import hashing
from coditect.identity.passwords import Argon2Params, Passwords
from coditect.identity.signing_keys import KeyRing
from coditect.store import Database, open_store


class CountingBackend:
    """A real argon2 PasswordHasher that records each call (to count Argon2 operations)."""

    def __init__(self, params: Argon2Params) -> None:
        self._real = argon2.PasswordHasher(
            time_cost=params.time_cost, memory_cost=params.memory_cost, parallelism=params.parallelism
        )
        self.calls: list[str] = []

    def hash(self, password: str | bytes) -> str:
        self.calls.append("hash")
        return self._real.hash(password)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.calls.append("verify")
        return self._real.verify(hash, password)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return self._real.check_needs_rehash(hash)


@pytest.fixture
def hasher_calls(identity_env: Path) -> Iterator[list[str]]:
    """Install a counting Argon2 backend (test parameters); yields its list of calls."""
    params = hashing.params_of(get_settings())
    backend = CountingBackend(params)
    hashing.override(Passwords(params, backend=backend, allow_weak_params=True))
    yield backend.calls
    hashing.override(None)


@pytest.fixture
def store(identity_env: Path) -> Iterator[Database]:
    """A handle on the test's store (the same SQLite file the functions use)."""
    db = open_store(get_settings().store_url)
    yield db
    db.close()


@pytest.fixture
def signing_ring(identity_env: Path) -> KeyRing:
    return KeyRing.load(identity_env)


def forge(
    ring: KeyRing,
    claims: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str = "EdDSA",
) -> str:
    """A token signed with our active private key (or `key`), with exactly the given claims/headers."""
    signing = ring.signing_key()
    head = {"kid": signing.kid, "typ": "at+jwt"} if headers is None else headers
    return jwt.encode(
        claims, key if key is not None else signing.private_key, algorithm=algorithm, headers=head
    )


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def now() -> int:
    return int(time.time())


def forge_raw(ring: KeyRing, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Sign arbitrary header JSON (even what PyJWT refuses to encode) with our active key."""
    import base64
    import json

    def seg(part: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    signing_input = seg(header) + b"." + seg(claims)
    signature = ring.signing_key().private_key.sign(signing_input)
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
