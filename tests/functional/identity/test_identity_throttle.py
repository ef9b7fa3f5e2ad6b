"""Login throttling (per account, per IP, before hashing), enumeration resistance, register limit."""

from __future__ import annotations

from typing import Any

import pytest

from coditect import ratelimit
from coditect.config import get_settings
from coditect.identity import throttle
from coditect.identity.models import email_key
from coditect.store import Database
from tests.helpers import check_envelope
from tests.plugins.identity import Account, Accounts, FakeClock

WRONG = "definitely-not-the-password"


def login(accounts: Accounts, email: str, password: str, ip: str = "127.0.0.1", **headers: str) -> Any:
    return accounts.client("login").post(
        "/api/v5/auth/login",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
        headers=headers,
    )


def account_state(store: Database, account: Account, now: float) -> ratelimit.Decision:
    policy = throttle.login_account(get_settings())
    return store.transact(ratelimit.check, policy, email_key(account.email), now)


def comparable(response: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    body = response.get_json()
    body.pop("request_id")
    headers = sorted((k, v) for k, v in response.headers.items() if k != "X-Request-Id")
    return response.status_code, body, headers


def test_lockout_after_n_failures_even_with_the_right_password(
    accounts: Accounts, store: Database, hasher_calls: list[str], identity_clock: FakeClock
) -> None:
    alice = accounts.register()
    limit = get_settings().login_account_limit
    for _ in range(limit):
        check_envelope(login(accounts, alice.email, WRONG), 401, "invalid_credentials")
    hasher_calls.clear()
    locked = login(accounts, alice.email, alice.password)
    check_envelope(locked, 401, "invalid_credentials")
    assert hasher_calls == []  # refused before any Argon2 work
    state = account_state(store, alice, identity_clock.t)
    assert not state.allowed and 0 < state.retry_after <= get_settings().login_account_backoff
    # Identical to a wrong password, apart from the request id.
    assert comparable(locked) == comparable(login(accounts, "nobody@example.test", WRONG, ip="10.9.9.9"))


def test_backoff_doubles_and_expires(accounts: Accounts, store: Database, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    s = get_settings()
    for _ in range(s.login_account_limit):
        check_envelope(login(accounts, alice.email, WRONG), 401)
    check_envelope(login(accounts, alice.email, alice.password), 401, "invalid_credentials")  # blocks
    identity_clock.advance(s.login_account_backoff + 1)
    # One probe after the block; a failed probe blocks again for twice as long.
    check_envelope(login(accounts, alice.email, WRONG), 401)
    check_envelope(login(accounts, alice.email, alice.password), 401, "invalid_credentials")
    assert account_state(store, alice, identity_clock.t).retry_after == pytest.approx(
        2 * s.login_account_backoff
    )
    identity_clock.advance(2 * s.login_account_backoff + 1)
    check_envelope(login(accounts, alice.email, alice.password), 200)
    # Success resets the account: the full allowance is back.
    assert account_state(store, alice, identity_clock.t).allowed
    for _ in range(s.login_account_limit):
        check_envelope(login(accounts, alice.email, WRONG), 401)
    check_envelope(login(accounts, alice.email, alice.password), 401)


def test_spread_ips_still_lock_the_account(accounts: Accounts, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    for i in range(get_settings().login_account_limit):
        check_envelope(login(accounts, alice.email, WRONG, ip=f"10.0.0.{i + 1}"), 401)
    check_envelope(login(accounts, alice.email, alice.password, ip="10.0.1.1"), 401, "invalid_credentials")


def test_per_ip_limit_across_accounts_and_spoofed_xff_is_ignored(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch, identity_clock: FakeClock
) -> None:
    monkeypatch.setenv("CODITECT_LOGIN_IP_LIMIT", "3")
    get_settings.cache_clear()
    assert get_settings().trusted_proxy_hops == 0
    victims = [accounts.register() for _ in range(4)]
    for i, victim in enumerate(victims[:3]):
        # Each attempt claims another client address: with 0 trusted hops it is not believed.
        check_envelope(login(accounts, victim.email, WRONG, **{"X-Forwarded-For": f"203.0.113.{i}"}), 401)
    blocked = login(accounts, victims[3].email, victims[3].password, **{"X-Forwarded-For": "198.51.100.7"})
    check_envelope(blocked, 401, "invalid_credentials")
    # The same account from another socket address is fine: the block was the IP's.
    check_envelope(login(accounts, victims[3].email, victims[3].password, ip="192.0.2.44"), 200)


def test_unknown_user_and_wrong_password_are_indistinguishable(
    accounts: Accounts, hasher_calls: list[str]
) -> None:
    alice = accounts.register()
    bob = accounts.invite(alice)
    check_envelope(
        accounts.client("tenant").delete(f"/api/v5/tenant/users/{bob.user_id}", headers=alice.headers), 204
    )
    hasher_calls.clear()
    wrong = login(accounts, alice.email, WRONG, ip="10.1.0.1")
    assert hasher_calls == ["verify"]
    hasher_calls.clear()
    unknown = login(accounts, "no-such-user@example.test", WRONG, ip="10.1.0.2")
    assert hasher_calls == ["verify"]  # the dummy verify: one Argon2 verify on both paths
    hasher_calls.clear()
    disabled = login(accounts, bob.email, bob.password, ip="10.1.0.3")
    assert hasher_calls == ["verify"]
    check_envelope(wrong, 401, "invalid_credentials")
    assert comparable(wrong) == comparable(unknown) == comparable(disabled)
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_user_costs_one_argon2_verify(
    accounts: Accounts, identity_env: Any, monkeypatch: Any
) -> None:
    """The dummy verify is a real Argon2 verify: count it at the argon2 library boundary."""
    import argon2

    calls: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def counting_verify(self: Any, hash: Any, password: Any) -> Any:
        calls.append("verify")
        return real_verify(self, hash, password)

    alice = accounts.register()
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    login(accounts, alice.email, WRONG, ip="10.2.0.1")
    known = list(calls)
    calls.clear()
    login(accounts, "ghost@example.test", WRONG, ip="10.2.0.2")
    assert known == calls == ["verify"]  # one Argon2 verify each, at the library boundary


def test_register_is_rate_limited(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_REGISTER_IP_LIMIT", "2")
    get_settings.cache_clear()
    client = accounts._make("register")
    for i in range(2):
        body = {"email": f"r{i}@example.test", "password": "a-strong-register-pass", "name": "R"}
        check_envelope(client.post("/api/v5/auth/register", json=body), 201)
    body = {"email": "r3@example.test", "password": "a-strong-register-pass", "name": "R"}
    response = client.post("/api/v5/auth/register", json=body)
    check_envelope(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    check_envelope(
        client.post("/api/v5/auth/register", json=body, environ_base={"REMOTE_ADDR": "10.7.7.7"}), 201
    )
