"""The workspace HTTP routes in-process: allocate, list, get, stop, tickets (functions/workspaces,
functions/workspace-allocate), with real accounts and a real sink recording the CloudEvents."""

from __future__ import annotations

import uuid

import pytest

from coditect.config import get_settings
from coditect.events import default_publisher, drain_outbox
from coditect.keyspace import OUTBOX
from tests.helpers import check_envelope

SHAPE = {
    "id",
    "session_id",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "sync",
}  # sync: issue 11 (the agent's report)


def outbox_size(db) -> int:  # type: ignore[no-untyped-def]
    return len(db.transact(lambda tr: tr.get_range(*OUTBOX.range())))


def test_allocate_answers_202_with_the_workspace_shape_and_publishes(ws) -> None:
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    data = check_envelope(ws.allocate(alice, sid), 202)
    assert set(data) == SHAPE
    assert data["session_id"] == sid and data["status"] == "requested" and data["status_reason"] is None
    uuid.UUID(data["id"])
    assert data["created_at"].endswith(("Z", "+00:00"))
    [event] = ws.sink.of_type("requested")
    assert event["source"] == "/coditect/workspaces" and event["subject"] == data["id"]
    assert event.get_data() == {"workspace_id": data["id"], "tenant_id": alice.tenant_id}
    assert outbox_size(ws.db) == 0  # flushed after the commit


def test_idempotency_key_returns_the_same_workspace_once(ws) -> None:
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    first = check_envelope(ws.allocate(alice, sid, **{"Idempotency-Key": "k-1"}), 202)
    second = check_envelope(ws.allocate(alice, sid, **{"Idempotency-Key": "k-1"}), 202)
    assert first == second
    assert len(ws.sink.of_type("requested")) == 1
    other_session = ws.session_for(alice)
    error = check_envelope(ws.allocate(alice, other_session, **{"Idempotency-Key": "k-1"}), 422)
    assert error["code"] == "idempotency_key_reused"
    # The key is the caller's own: another user's same key is a new allocation.
    bob = ws.accounts.register()
    bobs = check_envelope(ws.allocate(bob, ws.session_for(bob), **{"Idempotency-Key": "k-1"}), 202)
    assert bobs["id"] != first["id"]
    check_envelope(
        ws.allocate(alice, sid, **{"Idempotency-Key": "bad key with spaces"}), 422, "validation_failed"
    )


def test_one_active_workspace_per_session(ws) -> None:
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    first = check_envelope(ws.allocate(alice, sid), 202)
    again = check_envelope(ws.allocate(alice, sid), 202)
    assert again["id"] == first["id"]
    assert len(ws.sink.of_type("requested")) == 1
    check_envelope(ws.client.delete(f"/api/v5/workspaces/{first['id']}", headers=alice.headers), 202)
    fresh = check_envelope(ws.allocate(alice, sid), 202)
    assert fresh["id"] != first["id"]


def test_sessions_of_others_are_not_found(ws) -> None:
    alice, bob = ws.accounts.register(), ws.accounts.register()
    colleague = ws.accounts.invite(alice)
    for stranger in (bob, colleague):
        check_envelope(ws.allocate(stranger, ws.session_for(alice)), 404, "not_found")
    check_envelope(ws.allocate(alice, str(uuid.uuid4())), 404, "not_found")
    check_envelope(
        ws.allocate_client.post("/api/v5/workspaces", json={"session_id": "nope"}, headers=alice.headers),
        422,
        "validation_failed",
    )
    check_envelope(
        ws.allocate_client.post(
            "/api/v5/workspaces", json={"session_id": ws.session_for(alice), "tenant_id": bob.tenant_id},
            headers=alice.headers,
        ),
        422,
        "validation_failed",
    )  # fmt: skip
    check_envelope(ws.allocate_client.post("/api/v5/workspaces", json={"session_id": str(uuid.uuid4())}), 401)


def test_every_route_hides_other_users_and_tenants(ws) -> None:
    alice, bob = ws.accounts.register(), ws.accounts.register()
    colleague = ws.accounts.invite(alice)
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    for stranger in (bob, colleague):
        h = stranger.headers
        check_envelope(ws.client.get(f"/api/v5/workspaces/{wid}", headers=h), 404, "not_found")
        check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=h), 404, "not_found")
        check_envelope(ws.client.post(f"/api/v5/workspaces/{wid}/tickets", headers=h), 404, "not_found")
        assert check_envelope(ws.client.get("/api/v5/workspaces", headers=h), 200)["items"] == []
    assert ws.record(alice, wid).status == "requested"  # the strangers' DELETE changed nothing
    check_envelope(ws.client.get("/api/v5/workspaces/not-a-uuid", headers=alice.headers), 404, "not_found")


def test_list_is_paged_newest_first(ws) -> None:
    alice = ws.accounts.register()
    ids = [check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"] for _ in range(2)]
    page1 = check_envelope(ws.client.get("/api/v5/workspaces?limit=1", headers=alice.headers), 200)
    assert [w["id"] for w in page1["items"]] == [ids[1]] and page1["next_cursor"]
    page2 = check_envelope(
        ws.client.get(f"/api/v5/workspaces?limit=1&cursor={page1['next_cursor']}", headers=alice.headers), 200
    )
    assert [w["id"] for w in page2["items"]] == [ids[0]] and page2["next_cursor"] is None
    assert set(page2["items"][0]) == SHAPE
    check_envelope(
        ws.client.get("/api/v5/workspaces?limit=0", headers=alice.headers), 422, "validation_failed"
    )
    bob = ws.accounts.register()
    check_envelope(
        ws.client.get(f"/api/v5/workspaces?cursor={page1['next_cursor']}", headers=bob.headers),
        400,
        "invalid_cursor",
    )


def test_per_user_and_per_tenant_limits(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ws.allocate_app.settings
    monkeypatch.setattr(
        ws.allocate_app, "settings", settings.model_copy(update={"workspace_max_per_user": 1})
    )
    alice = ws.accounts.register()
    first = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)
    error = check_envelope(ws.allocate(alice, ws.session_for(alice)), 409, "workspace_limit_reached")
    assert "stop one" in error["message"]
    check_envelope(ws.client.delete(f"/api/v5/workspaces/{first['id']}", headers=alice.headers), 202)
    check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)  # stopping frees the slot

    monkeypatch.setattr(
        ws.allocate_app,
        "settings",
        settings.model_copy(update={"workspace_max_per_user": 5, "workspace_max_per_tenant": 2}),
    )
    colleague = ws.accounts.invite(alice)
    check_envelope(ws.allocate(colleague, ws.session_for(colleague)), 202)
    check_envelope(ws.allocate(colleague, ws.session_for(colleague)), 409, "workspace_limit_reached")
    outsider = ws.accounts.register()
    check_envelope(ws.allocate(outsider, ws.session_for(outsider)), 202)  # other tenants unaffected


def test_allocation_rate_limit_answers_429_with_retry_after(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ws.allocate_app.settings.model_copy(
        update={"workspace_allocate_per_minute": 2, "workspace_max_per_user": 50}
    )
    monkeypatch.setattr(ws.allocate_app, "settings", settings)
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    first = check_envelope(ws.allocate(alice, sid, **{"Idempotency-Key": "a"}), 202)
    check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)
    response = ws.allocate(alice, ws.session_for(alice))
    check_envelope(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # An idempotent replay is not an allocation: it is answered while throttled.
    assert check_envelope(ws.allocate(alice, sid, **{"Idempotency-Key": "a"}), 202)["id"] == first["id"]
    bob = ws.accounts.register()
    check_envelope(ws.allocate(bob, ws.session_for(bob)), 202)


def test_allocating_an_already_active_session_again_is_never_throttled(
    ws, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ws.allocate_app.settings.model_copy(update={"workspace_allocate_per_minute": 2})
    monkeypatch.setattr(ws.allocate_app, "settings", settings)
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    first = check_envelope(ws.allocate(alice, sid), 202)
    for _ in range(5):  # a browser re-posting for the same session gets the same workspace
        assert check_envelope(ws.allocate(alice, sid), 202)["id"] == first["id"]
    check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)  # one real allocation left
    check_envelope(ws.allocate(alice, ws.session_for(alice)), 429, "rate_limited")


def test_stop_answers_202_stopping_and_publishes_once(ws) -> None:
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    data = check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=alice.headers), 202)
    assert set(data) == SHAPE
    assert (data["status"], data["status_reason"]) == ("stopping", "stopped_by_user")
    again = check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=alice.headers), 202)
    assert again["status"] == "stopping"
    [event] = ws.sink.of_type("stop_requested")
    assert event.get_data() == {"workspace_id": wid, "tenant_id": alice.tenant_id}
    got = check_envelope(ws.client.get(f"/api/v5/workspaces/{wid}", headers=alice.headers), 200)
    assert got == again


def test_tickets_only_for_ready_workspaces(ws) -> None:
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    check_envelope(
        ws.client.post(f"/api/v5/workspaces/{wid}/tickets", headers=alice.headers), 409, "workspace_not_ready"
    )
    check_envelope(
        ws.client.post(f"/api/v5/workspaces/{uuid.uuid4()}/tickets", headers=alice.headers), 404, "not_found"
    )


def test_unflushed_events_are_drained_later(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    monkeypatch.delenv("K_SINK")
    get_settings.cache_clear()
    wid = check_envelope(ws.allocate(alice, sid), 202)["id"]
    assert ws.sink.of_type("requested") == [] and outbox_size(ws.db) == 1
    monkeypatch.setenv("K_SINK", ws.sink.url)
    get_settings.cache_clear()
    assert drain_outbox(ws.db, default_publisher()) == 1
    [event] = ws.sink.of_type("requested")
    assert event.get_data()["workspace_id"] == wid and outbox_size(ws.db) == 0
