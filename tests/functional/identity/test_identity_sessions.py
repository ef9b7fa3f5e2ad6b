"""Logout, password change, auth-sessions: revocation takes effect on the next request."""

from __future__ import annotations

from typing import Any

from coditect.identity import repository as repo
from coditect.store import Database
from tests.helpers import check_envelope
from tests.plugins.identity import Account, Accounts


def login(accounts: Accounts, account: Account, password: str | None = None, **kwargs: Any) -> dict[str, Any]:
    data = check_envelope(accounts.login(account.email, password or account.password, **kwargs), 200)
    return dict(data["tokens"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(accounts: Accounts, token: str) -> Any:
    return accounts.client("users").get("/api/v5/users/me", headers=bearer(token))


def refresh(accounts: Accounts, token: str) -> Any:
    return accounts.client("refresh").post("/api/v5/auth/refresh", json={"refresh_token": token})


def test_logout_is_idempotent_and_immediate(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    other = login(accounts, alice)
    logout = accounts.client("logout")
    check_envelope(logout.post("/api/v5/auth/logout", headers=alice.headers), 204)
    session = store.transact(repo.get_session, alice.tenant_id, alice.session_id)
    assert session.revoked_reason == "logout"
    assert store.transact(repo.read_live, alice.tenant_id, alice.session_id) is None
    check_envelope(logout.post("/api/v5/auth/logout", headers=alice.headers), 204)
    check_envelope(me(accounts, alice.access_token), 401, "session_revoked")
    check_envelope(refresh(accounts, alice.refresh_token), 401, "session_revoked")
    # Only that login session ended.
    check_envelope(me(accounts, other["access_token"]), 200)
    check_envelope(refresh(accounts, other["refresh_token"]), 200)
    # Without a token, logout is 401 like any protected route.
    check_envelope(logout.post("/api/v5/auth/logout"), 401, "token_missing")


def test_password_change_kills_the_other_sessions(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    second = login(accounts, alice)
    new_password = "correct-horse-battery-staple-9"
    response = accounts.client("users").put(
        "/api/v5/users/me/password",
        json={"current_password": alice.password, "new_password": new_password},
        headers=alice.headers,
    )
    check_envelope(response, 204)
    # The session that changed it lives on; the other one died at once.
    check_envelope(me(accounts, alice.access_token), 200)
    check_envelope(me(accounts, second["access_token"]), 401, "session_revoked")
    check_envelope(refresh(accounts, second["refresh_token"]), 401, "session_revoked")
    check_envelope(refresh(accounts, alice.refresh_token), 200)
    check_envelope(accounts.login(alice.email, alice.password), 401, "invalid_credentials")
    login(accounts, alice, new_password)
    user = store.transact(repo.get_user, alice.tenant_id, alice.user_id)
    assert user.password_hash.startswith("$argon2id$")


def test_password_change_needs_the_current_password_and_a_strong_new_one(accounts: Accounts) -> None:
    alice = accounts.register(tenant_name="Zebra Logistics")
    users = accounts.client("users")

    def put(current: str, new: str) -> Any:
        return users.put(
            "/api/v5/users/me/password",
            json={"current_password": current, "new_password": new},
            headers=alice.headers,
        )

    check_envelope(put("wrong-password-123456", "another-strong-pass-77"), 401, "invalid_credentials")
    error = check_envelope(put(alice.password, "short-pass"), 422, "weak_password")
    assert error["details"][0]["type"] == "too_short"
    error = check_envelope(put(alice.password, "zebra logistics is great"), 422, "weak_password")
    assert error["details"][0]["type"] == "contains_context"
    # Nothing changed: the old password still logs in.
    login(accounts, alice)


def test_auth_sessions_list_and_delete(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    second = login(accounts, alice, headers={"User-Agent": "pytest-browser/1.0"})
    users = accounts.client("users")
    page = check_envelope(users.get("/api/v5/users/me/auth-sessions", headers=alice.headers), 200)
    assert page["next_cursor"] is None
    by_id = {item["id"]: item for item in page["items"]}
    assert alice.session_id in by_id and len(by_id) == 2
    assert by_id[alice.session_id]["current"] is True
    other_id = next(sid for sid in by_id if sid != alice.session_id)
    assert by_id[other_id] == {
        "id": other_id,
        "created_at": by_id[other_id]["created_at"],
        "last_used_at": by_id[other_id]["last_used_at"],
        "user_agent": "pytest-browser/1.0",
        "current": False,
    }
    check_envelope(users.delete(f"/api/v5/users/me/auth-sessions/{other_id}", headers=alice.headers), 204)
    check_envelope(me(accounts, second["access_token"]), 401, "session_revoked")
    assert store.transact(repo.get_session, alice.tenant_id, other_id).revoked_at is not None
    page = check_envelope(users.get("/api/v5/users/me/auth-sessions", headers=alice.headers), 200)
    assert [item["id"] for item in page["items"]] == [alice.session_id]
    # Paging: limit 1 over two live sessions gives a cursor.
    login(accounts, alice)
    first = check_envelope(users.get("/api/v5/users/me/auth-sessions?limit=1", headers=alice.headers), 200)
    assert first["next_cursor"]
    check_envelope(
        users.get("/api/v5/users/me/auth-sessions?cursor=garbage", headers=alice.headers),
        400,
        "invalid_cursor",
    )


def test_another_users_auth_session_is_not_found(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    bob = accounts.invite(alice)
    users = accounts.client("users")
    check_envelope(
        users.delete(f"/api/v5/users/me/auth-sessions/{alice.session_id}", headers=bob.headers), 404
    )
    check_envelope(users.delete("/api/v5/users/me/auth-sessions/not-a-uuid", headers=bob.headers), 404)
    assert store.transact(repo.read_live, alice.tenant_id, alice.session_id) is not None
    check_envelope(me(accounts, alice.access_token), 200)


def test_a_role_change_racing_a_logout_cannot_bring_the_session_back(
    accounts: Accounts, store: Database
) -> None:
    from coditect.identity import login_sessions
    from coditect.store import StoreError

    alice = accounts.register()
    racing = store.create_transaction()
    login_sessions.set_role(racing, alice.tenant_id, alice.user_id, "admin")  # reads the live marker
    check_envelope(accounts.client("logout").post("/api/v5/auth/logout", headers=alice.headers), 204)
    try:
        racing.commit()
        committed = True
    except StoreError as exc:
        committed = False
        assert exc.code == 1020  # the role change conflicts with the logout and would be retried
    assert not committed
    assert store.transact(repo.read_live, alice.tenant_id, alice.session_id) is None
    check_envelope(me(accounts, alice.access_token), 401, "session_revoked")
