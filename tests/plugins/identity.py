"""Test fixtures for anything that needs a caller: real accounts made through the real functions.

Registered in tests/conftest.py (`pytest_plugins`). Use:

    def test_something(accounts, function_client):
        alice = accounts.register()                       # a new user in a new tenant (owner)
        bob = accounts.invite(alice, role="member")       # joins alice's tenant via a real invite
        function_client("sessions").get("/api/v5/sessions", headers=alice.headers)

Every account is created in-process through functions/register (and functions/tenant for the
invite), exactly as in production, against the test's own data dir and key directory. Argon2 runs
with its smallest legal cost here *only* because this fixture sets CODITECT_ARGON2_MEMORY_KIB,
CODITECT_ARGON2_TIME_COST and CODITECT_ARGON2_WEAK_PARAMS_FOR_TESTS; production defaults are
OWASP's minimum (tests/unit/identity asserts them). The register rate limit is raised so suites
that create many accounts are not throttled; tests of the limit set their own.

`identity_clock` replaces the clock identity reads (session lifetimes, grace windows,
throttles, token times) with a settable one: `identity_clock.advance(3600)`.
"""

from __future__ import annotations

import itertools
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_counter = itertools.count(1)

# Test-only Argon2 cost (argon2's minimum) and a generous register limit.
TEST_ENV = {
    "CODITECT_ARGON2_MEMORY_KIB": "8",
    "CODITECT_ARGON2_TIME_COST": "1",
    "CODITECT_ARGON2_WEAK_PARAMS_FOR_TESTS": "true",
    "CODITECT_REGISTER_IP_LIMIT": "10000",
}


def strong_password() -> str:
    """A password that passes the policy and is unique per call."""
    return f"test-{secrets.token_hex(8)}-quartz"


@dataclass
class Account:
    email: str
    password: str
    name: str
    user_id: str
    tenant_id: str
    session_id: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def session_id_of(access_token: str) -> str:
    """The `sid` claim (unverified: for test bookkeeping only)."""
    import jwt

    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


class Accounts:
    def __init__(self, function_client: Callable[[str], Any]) -> None:
        self._make = function_client
        self._clients: dict[str, Any] = {}
        self._apps: dict[str, Any] = {}

    def client(self, name: str) -> Any:
        """A cached Flask test client of functions/<name>."""
        if name not in self._clients:
            self._clients[name] = self._make(name)
            # functions-framework registers the loaded source as sys.modules["main"].
            self._apps[name] = sys.modules["main"].app
        return self._clients[name]

    def app(self, name: str) -> Any:
        """The FunctionApp behind `client(name)` (e.g. to reach `app.db.faults`)."""
        self.client(name)
        return self._apps[name]

    def _account(self, data: dict[str, Any], password: str) -> Account:
        user, tokens = data["user"], data["tokens"]
        return Account(
            email=user["email"],
            password=password,
            name=user["name"],
            user_id=user["id"],
            tenant_id=user["tenant_id"],
            session_id=session_id_of(tokens["access_token"]),
            role=user["role"],
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )

    def register(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        tenant_name: str | None = None,
        name: str | None = None,
        invite_token: str | None = None,
    ) -> Account:
        """Register a fresh user (a new tenant, or the invite's) through functions/register."""
        n = next(_counter)
        password = password or strong_password()
        body: dict[str, Any] = {
            "email": email or f"user{n}-{secrets.token_hex(3)}@example.test",
            "password": password,
            "name": name or f"Test User {n}",
        }
        if tenant_name is not None:
            body["tenant_name"] = tenant_name
        if invite_token is not None:
            body["invite_token"] = invite_token
        response = self.client("register").post("/api/v5/auth/register", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return self._account(response.get_json()["data"], password)

    def invite(self, owner: Account, role: str = "member", *, email: str | None = None) -> Account:
        """Add a user to `owner`'s tenant through a real invite (functions/tenant) and register."""
        response = self.client("tenant").post(
            "/api/v5/tenant/invites", json={"role": role}, headers=owner.headers
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        token = response.get_json()["data"]["invite_token"]
        return self.register(email=email, invite_token=token)

    def login(self, email: str, password: str, **kwargs: Any) -> Any:
        """POST /auth/login; returns the raw response."""
        return self.client("login").post(
            "/api/v5/auth/login", json={"email": email, "password": password}, **kwargs
        )


@pytest.fixture
def identity_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Test Argon2 cost and a key directory at <data_dir>/keys (what Settings.keys_dir resolves to)."""
    from coditect.config import get_settings
    from coditect.identity.signing_keys import ensure_keys

    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CODITECT_KEYS_DIR", raising=False)
    get_settings.cache_clear()
    keys_dir = get_settings().resolved_keys_dir
    assert keys_dir.resolve() == (data_dir / "keys").resolve()
    ensure_keys(keys_dir)
    return keys_dir


@pytest.fixture
def accounts(identity_env: Path, function_client: Callable[[str], Any]) -> Accounts:
    return Accounts(function_client)


class FakeClock:
    """A settable clock for coditect.identity.clock (seconds since the epoch)."""

    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, t: float) -> None:
        self.t = t


@pytest.fixture
def identity_clock() -> Iterator[FakeClock]:
    import time

    from coditect.identity import clock

    fake = FakeClock(time.time())
    clock.set_clock(fake)
    yield fake
    clock.set_clock(None)
