"""Tenants, invites, roles, disabling users, isolation, mass assignment and the audit log."""

from __future__ import annotations

import uuid
from typing import Any

from coditect.identity import repository as repo
from coditect.store import Database
from tests.helpers import check_envelope
from tests.plugins.identity import Account, Accounts, FakeClock

USER_KEYS = {"id", "email", "name", "tenant_id", "role", "created_at", "updated_at"}


def tenant(accounts: Accounts) -> Any:
    return accounts.client("tenant")


def invite(accounts: Accounts, by: Account, **body: Any) -> Any:
    return tenant(accounts).post("/api/v5/tenant/invites", json={"role": "member"} | body, headers=by.headers)


def register_with(accounts: Accounts, token: str, email: str = "") -> Any:
    body = {
        "email": email or f"inv-{uuid.uuid4().hex[:8]}@example.test",
        "password": "an-invited-strong-pass",
        "name": "Invitee",
        "invite_token": token,
    }
    return accounts.client("register").post("/api/v5/auth/register", json=body)


def audit_types(accounts: Accounts, admin: Account) -> list[dict[str, Any]]:
    return list(
        check_envelope(accounts.client("audit").get("/api/v5/audit", headers=admin.headers), 200)["items"]
    )


def test_register_creates_a_tenant_with_an_owner(accounts: Accounts, store: Database) -> None:
    body = {"email": "  Carol@Example.TEST ", "password": "tangerine-orbit-lantern-5", "name": "Carol"}
    data = check_envelope(accounts.client("register").post("/api/v5/auth/register", json=body), 201)
    assert set(data) == {"user", "tenant", "tokens"} and set(data["user"]) == USER_KEYS
    assert data["user"]["role"] == "owner" and data["user"]["email"] == "Carol@Example.TEST"
    assert data["tenant"]["name"] == "Carol's workspace" and set(data["tenant"]) == {
        "id",
        "name",
        "created_at",
    }
    assert store.transact(repo.email_owner, "carol@example.test") == (
        data["tenant"]["id"],
        data["user"]["id"],
    )
    # Emails are unique platform-wide: case, surrounding space and NFKC forms are the same email.
    for email in ("carol@example.test", "CAROL@EXAMPLE.TEST", "\uff23arol@example.test"):
        again = body | {"email": email}
        check_envelope(
            accounts.client("register").post("/api/v5/auth/register", json=again), 409, "email_taken"
        )


def test_invites_are_single_use_role_bound_and_expire(
    accounts: Accounts, store: Database, identity_clock: FakeClock
) -> None:
    alice = accounts.register()
    data = check_envelope(invite(accounts, alice, role="admin"), 201)
    assert set(data) == {"invite_token", "role", "expires_at"} and data["role"] == "admin"
    joined = check_envelope(register_with(accounts, data["invite_token"]), 201)
    assert joined["user"]["role"] == "admin" and joined["tenant"]["id"] == alice.tenant_id
    check_envelope(register_with(accounts, data["invite_token"]), 422, "invite_invalid")
    expiring = check_envelope(invite(accounts, alice), 201)["invite_token"]
    identity_clock.advance(7 * 86400 + 1)
    check_envelope(register_with(accounts, expiring), 422, "invite_invalid")
    check_envelope(register_with(accounts, "cit_" + "A" * 43), 422, "invite_invalid")
    check_envelope(register_with(accounts, "junk"), 422, "invite_invalid")
    fresh = check_envelope(accounts.login(alice.email, alice.password), 200)["tokens"]["access_token"]
    alice.access_token = fresh  # the old one expired with the clock
    bound = check_envelope(invite(accounts, alice, email="dana@example.test"), 201)["invite_token"]
    check_envelope(register_with(accounts, bound, "eve@example.test"), 422, "invite_invalid")
    check_envelope(register_with(accounts, bound, "DANA@example.test"), 201)
    # Nothing was created for the refused attempts.
    assert store.transact(repo.email_owner, "eve@example.test") is None
    types = [e["type"] for e in audit_types(accounts, alice)]
    assert types.count("invite_created") == 3 and types.count("invite_used") == 2


def test_members_cannot_manage_and_403s_are_audited(accounts: Accounts) -> None:
    alice = accounts.register()
    bob = accounts.invite(alice)
    t = tenant(accounts)
    check_envelope(t.get("/api/v5/tenant", headers=bob.headers), 200)
    check_envelope(t.get("/api/v5/tenant/users", headers=bob.headers), 403, "forbidden")
    check_envelope(invite(accounts, bob), 403, "forbidden")
    check_envelope(
        t.patch(f"/api/v5/tenant/users/{alice.user_id}", json={"role": "member"}, headers=bob.headers), 403
    )
    check_envelope(t.delete(f"/api/v5/tenant/users/{alice.user_id}", headers=bob.headers), 403)
    check_envelope(accounts.client("audit").get("/api/v5/audit", headers=bob.headers), 403, "forbidden")
    denied = [e for e in audit_types(accounts, alice) if e["type"] == "authorization"]
    assert len(denied) == 5 and all(
        e["actor_id"] == bob.user_id and e["outcome"] == "failure" for e in denied
    )
    # The runtime refuses the `auth="admin"` routes before any handler runs, with one reason.
    assert {e["reason"] for e in denied} == {"role_required"}
    check_envelope(accounts.client("users").get("/api/v5/users/me", headers=alice.headers), 200)


def test_roles_last_owner_and_admin_limits(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    admin = accounts.invite(alice, role="admin")
    member = accounts.invite(alice)
    t = tenant(accounts)

    def patch(who: Account, target: Account, role: str) -> Any:
        return t.patch(f"/api/v5/tenant/users/{target.user_id}", json={"role": role}, headers=who.headers)

    check_envelope(patch(alice, alice, "admin"), 409, "last_owner")
    check_envelope(
        t.delete(f"/api/v5/tenant/users/{alice.user_id}", headers=alice.headers), 409, "last_owner"
    )
    # Admins manage members and admins but never the owner role.
    check_envelope(patch(admin, member, "owner"), 403, "forbidden")
    check_envelope(patch(admin, alice, "member"), 403, "forbidden")
    check_envelope(t.delete(f"/api/v5/tenant/users/{alice.user_id}", headers=admin.headers), 403)
    owner_refusals = [
        (e["reason"], e["target_id"], e["actor_id"])
        for e in audit_types(accounts, alice)
        if e["type"] == "authorization"
    ]
    assert sorted(owner_refusals) == sorted(
        [("owner_required", target.user_id, admin.user_id) for target in (member, alice, alice)]
    )
    assert check_envelope(patch(admin, member, "admin"), 200)["role"] == "admin"
    # The new role is effective on the next request, with the old access token.
    check_envelope(t.get("/api/v5/tenant/users", headers=member.headers), 200)
    check_envelope(patch(admin, member, "member"), 200)
    check_envelope(t.get("/api/v5/tenant/users", headers=member.headers), 403)
    # An owner can make a second owner; then the first can step down.
    check_envelope(patch(alice, admin, "owner"), 200)
    check_envelope(patch(alice, alice, "member"), 200)
    check_envelope(patch(admin, admin, "member"), 409, "last_owner")
    roles = {u.id: u.role for u in store.transact(repo.tenant_users, alice.tenant_id)}
    assert roles == {alice.user_id: "member", admin.user_id: "owner", member.user_id: "member"}
    assert "role_change" in [e["type"] for e in audit_types(accounts, admin)]


def test_disable_user_revokes_everything(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    bob = accounts.invite(alice)
    t = tenant(accounts)
    check_envelope(t.delete(f"/api/v5/tenant/users/{bob.user_id}", headers=alice.headers), 204)
    check_envelope(t.delete(f"/api/v5/tenant/users/{bob.user_id}", headers=alice.headers), 204)
    user = store.transact(repo.get_user, alice.tenant_id, bob.user_id)
    assert user.disabled
    assert store.transact(repo.read_live, alice.tenant_id, bob.session_id) is None
    refresh = accounts.client("refresh").post(
        "/api/v5/auth/refresh", json={"refresh_token": bob.refresh_token}
    )
    check_envelope(refresh, 401, "session_revoked")
    listed = check_envelope(t.get("/api/v5/tenant/users", headers=alice.headers), 200)["items"]
    assert [u["id"] for u in listed] == [alice.user_id]
    assert "user_disabled" in [e["type"] for e in audit_types(accounts, alice)]


def test_tenant_isolation(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    alice_member = accounts.invite(alice)
    mallory = accounts.register()  # owner of tenant B
    t = tenant(accounts)
    check_envelope(
        t.patch(
            f"/api/v5/tenant/users/{alice_member.user_id}", json={"role": "admin"}, headers=mallory.headers
        ),
        404,
        "not_found",
    )
    check_envelope(t.delete(f"/api/v5/tenant/users/{alice_member.user_id}", headers=mallory.headers), 404)
    check_envelope(t.delete(f"/api/v5/tenant/users/{alice.user_id}", headers=mallory.headers), 404)
    assert not store.transact(repo.get_user, alice.tenant_id, alice_member.user_id).disabled
    # Tenant ids in query or headers are ignored; in a body they are rejected.
    spoof = {"X-Tenant-Id": alice.tenant_id, **mallory.headers}
    got = check_envelope(t.get(f"/api/v5/tenant?tenant_id={alice.tenant_id}", headers=spoof), 200)
    assert got["id"] == mallory.tenant_id
    users = check_envelope(t.get(f"/api/v5/tenant/users?tenant_id={alice.tenant_id}", headers=spoof), 422)
    assert users["code"] == "validation_failed"
    users = check_envelope(t.get("/api/v5/tenant/users", headers=spoof), 200)["items"]
    assert {u["tenant_id"] for u in users} == {mallory.tenant_id}
    check_envelope(
        t.post(
            "/api/v5/tenant/invites",
            json={"role": "member", "tenant_id": alice.tenant_id},
            headers=mallory.headers,
        ),
        422,
        "validation_failed",
    )
    events = check_envelope(accounts.client("audit").get("/api/v5/audit", headers=spoof), 200)["items"]
    assert events and {e["tenant_id"] for e in events} == {mallory.tenant_id}


def test_mass_assignment_on_users_me_is_rejected(accounts: Accounts, store: Database) -> None:
    alice = accounts.register()
    users = accounts.client("users")
    before = store.transact(repo.get_user, alice.tenant_id, alice.user_id)
    for field, value in (
        ("role", "owner"),
        ("tenant_id", str(uuid.uuid4())),
        ("email", "x@example.test"),
        ("id", str(uuid.uuid4())),
        ("password_hash", "$argon2id$x"),
    ):
        error = check_envelope(
            users.patch("/api/v5/users/me", json={"name": "N", field: value}, headers=alice.headers),
            422,
            "validation_failed",
        )
        assert error["details"][0]["loc"] == ["body", field]
    assert store.transact(repo.get_user, alice.tenant_id, alice.user_id) == before
    data = check_envelope(
        users.patch("/api/v5/users/me", json={"name": "Alice B."}, headers=alice.headers), 200
    )
    assert data["name"] == "Alice B." and set(data) == USER_KEYS


def test_audit_is_newest_first_and_paged(accounts: Accounts) -> None:
    alice = accounts.register()
    for _ in range(3):
        check_envelope(accounts.login(alice.email, alice.password), 200)
    check_envelope(accounts.login(alice.email, "wrong-password-here"), 401)
    a = accounts.client("audit")
    first = check_envelope(a.get("/api/v5/audit?limit=2", headers=alice.headers), 200)
    assert len(first["items"]) == 2 and first["next_cursor"]
    assert first["items"][0]["type"] == "login" and first["items"][0]["outcome"] == "failure"
    assert first["items"][0]["reason"] == "invalid_credentials"
    rest = check_envelope(
        a.get(f"/api/v5/audit?limit=50&cursor={first['next_cursor']}", headers=alice.headers), 200
    )
    events = first["items"] + rest["items"]
    assert [e["type"] for e in events] == ["login", "login", "login", "login", "register"]
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True)
    assert set(events[-1]) == {
        "id",
        "type",
        "time",
        "tenant_id",
        "actor_id",
        "target_id",
        "session_id",
        "request_id",
        "ip",
        "outcome",
        "reason",
    }
    assert events[-1]["session_id"] == alice.session_id and events[-1]["ip"] == "127.0.0.1"
