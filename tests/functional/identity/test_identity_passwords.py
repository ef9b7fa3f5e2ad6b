"""Password rules through register/login: Argon2id storage, NIST policy, NFKC, no truncation."""

from __future__ import annotations

from typing import Any

import pytest

from coditect.config import Settings, get_settings
from coditect.identity import repository as repo
from coditect.identity.hashing import params_of, passwords
from coditect.identity.passwords import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST
from coditect.store import Database
from tests.helpers import check_envelope
from tests.plugins.identity import Accounts


def register(accounts: Accounts, password: str, **extra: Any) -> Any:
    body = {
        "email": f"pw-{abs(hash(password)) % 10**9}@example.test",
        "password": password,
        "name": "Pat",
    } | extra
    return accounts.client("register").post("/api/v5/auth/register", json=body)


def test_production_argon2_defaults_meet_owasp(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CODITECT_ARGON2_MEMORY_KIB",
        "CODITECT_ARGON2_TIME_COST",
        "CODITECT_ARGON2_WEAK_PARAMS_FOR_TESTS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    params = params_of(settings)
    assert params.memory_cost >= OWASP_MIN_MEMORY_KIB == 19456
    assert params.time_cost >= OWASP_MIN_TIME_COST == 2 and params.parallelism == 1
    assert params.meets_owasp_minimum and settings.argon2_weak_params_for_tests is False
    # Lower parameters without the explicit test flag are refused.
    with pytest.raises(ValueError, match="OWASP"):
        passwords(Settings(argon2_memory_kib=1024))


def test_stored_hash_is_argon2id_with_the_configured_params(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    user = store.transact(repo.get_user, alice.tenant_id, alice.user_id)
    s = get_settings()
    assert user.password_hash.startswith(
        f"$argon2id$v=19$m={s.argon2_memory_kib},t={s.argon2_time_cost},p={s.argon2_parallelism}$"
    )


def test_14_code_points_rejected_15_accepted(accounts: Accounts, store: Database) -> None:
    error = check_envelope(register(accounts, "kx9!mq2#vb7$zt"), 422, "weak_password")
    assert error["details"] == [{"loc": ["body", "password"], "type": "too_short"}]
    data = check_envelope(register(accounts, "kx9!mq2#vb7$zt4"), 201)
    assert store.transact(repo.get_user, data["tenant"]["id"], data["user"]["id"]) is not None


def test_over_long_rejected_without_hashing(
    accounts: Accounts, hasher_calls: list[str], store: Database
) -> None:
    error = check_envelope(register(accounts, "a-long-password-" * 70), 422, "weak_password")  # 1120 bytes
    assert error["details"][0]["type"] == "too_long"
    assert hasher_calls == []
    alice = accounts.register()
    hasher_calls.clear()
    check_envelope(accounts.login(alice.email, "x" * 5000), 401, "invalid_credentials")
    assert hasher_calls == []  # not even verified: no stored password can be that long


@pytest.mark.parametrize(
    ("password", "violation"),
    [
        ("passwordpassword", "common"),
        ("1qaz2wsx3edc4rfv", "common"),
        ("1234qwerasdfzxcv", "common"),
        ("we love Acme Rockets a lot", "contains_context"),
        ("patricia.smith-is-my-password", "contains_context"),
    ],
)
def test_blocklisted_and_context_passwords(accounts: Accounts, password: str, violation: str) -> None:
    body = {
        "email": "patricia.smith@example.test",
        "password": password,
        "name": "Pat",
        "tenant_name": "Acme Rockets",
    }
    error = check_envelope(
        accounts.client("register").post("/api/v5/auth/register", json=body), 422, "weak_password"
    )
    assert error["details"][0]["type"] == violation


def test_nfkc_equivalent_passwords_are_the_same(accounts: Accounts) -> None:
    plain = "Strong-Passphrase-2024"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in plain)
    alice = accounts.register(password=fullwidth)
    check_envelope(accounts.login(alice.email, plain), 200)
    composed, decomposed = "caf\u00e9-au-lait-morning-run", "cafe\u0301-au-lait-morning-run"
    bob = accounts.register(password=composed)
    check_envelope(accounts.login(bob.email, decomposed), 200)


def test_no_truncation(accounts: Accounts) -> None:
    base = "p" + "-unique-words" * 6  # 79 bytes: past bcrypt's 72
    alice = accounts.register(password=base + "A")
    check_envelope(accounts.login(alice.email, base + "B"), 401, "invalid_credentials")
    check_envelope(accounts.login(alice.email, base), 401, "invalid_credentials")
    check_envelope(accounts.login(alice.email, base + "A"), 200)


def test_rehash_on_login_when_params_change(
    accounts: Accounts, store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = accounts.register()
    old = store.transact(repo.get_user, alice.tenant_id, alice.user_id).password_hash
    assert ",t=1," in old
    monkeypatch.setenv("CODITECT_ARGON2_TIME_COST", "2")
    get_settings.cache_clear()
    login = accounts._make("login")  # a function started with the new parameters
    check_envelope(
        login.post("/api/v5/auth/login", json={"email": alice.email, "password": alice.password}), 200
    )
    new = store.transact(repo.get_user, alice.tenant_id, alice.user_id).password_hash
    assert new != old and ",t=2," in new
    check_envelope(
        login.post("/api/v5/auth/login", json={"email": alice.email, "password": alice.password}), 200
    )
