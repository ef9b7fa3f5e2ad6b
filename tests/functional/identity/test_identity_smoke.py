"""The fixture and the main flow end to end, in-process."""

from __future__ import annotations

from tests.helpers import check_envelope


def test_register_login_refresh_me_logout(accounts, function_client) -> None:  # type: ignore[no-untyped-def]
    alice = accounts.register(tenant_name="Acme Rockets")
    assert alice.role == "owner"
    me = check_envelope(function_client("users").get("/api/v5/users/me", headers=alice.headers), 200)
    assert me["id"] == alice.user_id and me["tenant_id"] == alice.tenant_id
    data = check_envelope(accounts.login(alice.email, alice.password), 200)
    assert data["user"]["id"] == alice.user_id and data["tenant"]["name"] == "Acme Rockets"
    refreshed = check_envelope(
        function_client("refresh").post("/api/v5/auth/refresh", json={"refresh_token": alice.refresh_token}),
        200,
    )
    assert refreshed["tokens"]["refresh_token"] != alice.refresh_token
    bob = accounts.invite(alice, role="admin")
    assert bob.tenant_id == alice.tenant_id and bob.role == "admin"
    logout = function_client("logout")
    check_envelope(logout.post("/api/v5/auth/logout", headers=alice.headers), 204)
    check_envelope(logout.post("/api/v5/auth/logout", headers=alice.headers), 204)
    check_envelope(
        function_client("users").get("/api/v5/users/me", headers=alice.headers), 401, "session_revoked"
    )
