"""Refresh-token rotation: single use, grace replay, reuse detection, lifetimes, 1021, concurrency."""

from __future__ import annotations

import threading
from typing import Any

from coditect.config import get_settings
from coditect.identity import repository as repo
from coditect.identity import tokens
from coditect.identity.accounts import pepper_of
from coditect.store import Database
from tests.helpers import check_envelope, run_threads
from tests.plugins.identity import Account, Accounts, FakeClock


def refresh(accounts: Accounts, token: str, **kwargs: Any) -> Any:
    return accounts.client("refresh").post("/api/v5/auth/refresh", json={"refresh_token": token}, **kwargs)


def session_of(store: Database, account: Account) -> Any:
    return store.transact(repo.get_session, account.tenant_id, account.session_id)


def live(store: Database, account: Account) -> Any:
    return store.transact(lambda tr: tr.get(repo._live_key(account.tenant_id, account.session_id)))


def me(accounts: Accounts, access_token: str) -> Any:
    return accounts.client("users").get(
        "/api/v5/users/me", headers={"Authorization": f"Bearer {access_token}"}
    )


def test_login_then_refresh_rotates(accounts: Accounts, store: Database, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    data = check_envelope(refresh(accounts, alice.refresh_token), 200)
    new = data["tokens"]
    assert set(new) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert new["token_type"] == "Bearer" and 0 < new["expires_in"] <= 900
    assert new["refresh_token"] != alice.refresh_token and new["refresh_token"].startswith("crt_")
    session = session_of(store, alice)
    assert session.generation == 1 and session.revoked_at is None
    # The store indexes both generations by digest only, and the new access token works.
    pepper = pepper_of(get_settings())
    for gen, token in ((0, alice.refresh_token), (1, new["refresh_token"])):
        digest = tokens.refresh_digest(pepper, token)
        assert digest is not None
        assert store.transact(repo.lookup_refresh, digest) == (alice.tenant_id, alice.session_id, gen)
    check_envelope(me(accounts, new["access_token"]), 200)
    # The successor rotates again.
    identity_clock.advance(60)
    third = check_envelope(refresh(accounts, new["refresh_token"]), 200)["tokens"]["refresh_token"]
    assert third not in (alice.refresh_token, new["refresh_token"])
    assert session_of(store, alice).generation == 2


def test_predecessor_within_grace_returns_the_identical_successor(
    accounts: Accounts, store: Database, identity_clock: FakeClock
) -> None:
    alice = accounts.register()
    first = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]
    identity_clock.advance(9)
    again = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]
    assert again["refresh_token"] == first["refresh_token"]
    session = session_of(store, alice)
    assert session.generation == 1 and session.revoked_at is None
    assert live(store, alice) is not None
    # The successor is still the live token.
    check_envelope(refresh(accounts, first["refresh_token"]), 200)


def test_reuse_after_grace_revokes_the_family(
    accounts: Accounts, store: Database, identity_clock: FakeClock
) -> None:
    alice = accounts.register()
    current = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]
    check_envelope(me(accounts, current["access_token"]), 200)
    identity_clock.advance(11)
    check_envelope(refresh(accounts, alice.refresh_token), 401, "refresh_token_reused")
    session = session_of(store, alice)
    assert session.revoked_at is not None and session.revoked_reason == "refresh_token_reused"
    assert live(store, alice) is None
    # The current refresh token and every access token of the family die at once.
    check_envelope(refresh(accounts, current["refresh_token"]), 401, "session_revoked")
    check_envelope(me(accounts, current["access_token"]), 401, "session_revoked")
    check_envelope(me(accounts, alice.access_token), 401, "session_revoked")
    # ...and the reuse is in the tenant's audit log, with the session id and no token.
    events = check_envelope(
        accounts.client("audit").get("/api/v5/audit", headers=accounts.register().headers), 200
    )["items"]
    assert all(e["tenant_id"] != alice.tenant_id for e in events)  # another tenant sees nothing


def test_reuse_is_audited(accounts: Accounts, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    admin = accounts.invite(alice, role="admin")
    check_envelope(refresh(accounts, alice.refresh_token), 200)
    identity_clock.advance(30)
    check_envelope(refresh(accounts, alice.refresh_token), 401, "refresh_token_reused")
    events = check_envelope(accounts.client("audit").get("/api/v5/audit", headers=admin.headers), 200)[
        "items"
    ]
    reuse = [e for e in events if e["type"] == "refresh_token_reuse"]
    assert len(reuse) == 1
    assert reuse[0]["session_id"] == alice.session_id and reuse[0]["outcome"] == "failure"
    assert reuse[0]["reason"] == "refresh_token_reused" and reuse[0]["actor_id"] == alice.user_id
    assert alice.refresh_token not in str(events)


def test_grandparent_within_grace_revokes(
    accounts: Accounts, store: Database, identity_clock: FakeClock
) -> None:
    alice = accounts.register()
    child = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]["refresh_token"]
    identity_clock.advance(1)
    grandchild = check_envelope(refresh(accounts, child), 200)["tokens"]["refresh_token"]
    identity_clock.advance(1)
    check_envelope(refresh(accounts, alice.refresh_token), 401, "refresh_token_reused")
    assert session_of(store, alice).revoked_reason == "refresh_token_reused"
    check_envelope(refresh(accounts, grandchild), 401, "session_revoked")


def test_twenty_concurrent_refreshes_yield_one_successor(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    client = accounts.client("refresh")
    results: list[Any] = [None] * 20
    barrier = threading.Barrier(20)

    def go(i: int) -> None:
        barrier.wait()
        response = client.post("/api/v5/auth/refresh", json={"refresh_token": alice.refresh_token})
        results[i] = (response.status_code, response.get_json())

    run_threads([lambda i=i: go(i) for i in range(20)])
    assert [status for status, _ in results] == [200] * 20, results
    successors = {body["data"]["tokens"]["refresh_token"] for _, body in results}
    assert len(successors) == 1
    session = session_of(store, alice)
    assert session.generation == 1 and session.revoked_at is None


def test_tampered_and_random_refresh_tokens_change_nothing(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    before = session_of(store, alice)
    t = alice.refresh_token
    flipped = t[:-1] + ("A" if t[-1] != "A" else "B")
    forged = [
        flipped,
        tokens.REFRESH_PREFIX + "A" * 43,
        tokens.REFRESH_PREFIX + t[4:][::-1],
        "",
        "x" * 200,
        alice.access_token[:256],
        alice.access_token,  # an access token sent as a refresh token: 401, not 422
        "Bearer " + alice.access_token,
        "x" * 8000,
        t + "A",
    ]
    for token in forged:
        check_envelope(refresh(accounts, token), 401, "refresh_token_not_found")
    assert session_of(store, alice) == before
    assert live(store, alice) is not None
    check_envelope(refresh(accounts, alice.refresh_token), 200)


def test_absolute_lifetime(accounts: Accounts, store: Database, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    token = alice.refresh_token
    # Keep the session busy (never idle) until just past 30 days.
    for _ in range(5):
        identity_clock.advance(5.5 * 86400)
        token = check_envelope(refresh(accounts, token), 200)["tokens"]["refresh_token"]
    identity_clock.advance(3 * 86400)  # 30.5 days after login, 3 days after the last refresh
    check_envelope(refresh(accounts, token), 401, "session_expired")
    session = session_of(store, alice)
    assert session.generation == 5 and session.revoked_at is None


def test_idle_lifetime(accounts: Accounts, store: Database, identity_clock: FakeClock) -> None:
    alice = accounts.register()
    identity_clock.advance(7 * 86400 - 60)
    token = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]["refresh_token"]
    identity_clock.advance(7 * 86400)
    check_envelope(refresh(accounts, token), 401, "session_expired")
    assert session_of(store, alice).generation == 1


def test_commit_unknown_result_during_rotation_does_not_revoke(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    accounts.app("refresh").db.faults.commit_unknown_after = 1
    data = check_envelope(refresh(accounts, alice.refresh_token), 200)["tokens"]
    assert accounts.app("refresh").db.faults.commit_unknown_after == 0  # the fault fired
    session = session_of(store, alice)
    assert session.revoked_at is None and session.generation == 1
    # The answer is the successor that was committed: it rotates normally.
    check_envelope(refresh(accounts, data["refresh_token"]), 200)
    assert session_of(store, alice).generation == 2


def test_refresh_is_rate_limited_per_ip(accounts: Accounts, monkeypatch: Any) -> None:
    alice = accounts.register()
    monkeypatch.setenv("CODITECT_REFRESH_IP_LIMIT", "3")
    get_settings.cache_clear()
    client = accounts._make("refresh")  # a fresh app reads the lowered limit
    for _ in range(3):
        check_envelope(client.post("/api/v5/auth/refresh", json={"refresh_token": "crt_nope"}), 401)
    response = client.post("/api/v5/auth/refresh", json={"refresh_token": alice.refresh_token})
    check_envelope(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # Another client IP is not affected.
    other = client.post(
        "/api/v5/auth/refresh",
        json={"refresh_token": alice.refresh_token},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    check_envelope(other, 200)
