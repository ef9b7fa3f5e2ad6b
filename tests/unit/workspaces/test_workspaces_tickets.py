"""Relay tickets, cookies, grants and activity (coditect.workspaces.tickets) on a real SQLite store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coditect.config import get_settings
from coditect.errors import Conflict, NotFound
from coditect.identity import repository as identity
from coditect.identity.context import TenantContext, mint
from coditect.store import Database, open_store
from coditect.workspaces import lifecycle, repository, tickets
from coditect.workspaces.models import WorkspaceRecord
from coditect.workspaces.provisioner import Endpoint
from coditect.workspaces.tickets import RelayDenied

T0 = 1_750_000_000.0


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("CODITECT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CODITECT_PUBLIC_BASE_URL", "https://ide.example.com")
    get_settings.cache_clear()
    database = open_store(f"sqlite://{tmp_path / 'store.db'}")
    yield database
    database.close()
    get_settings.cache_clear()


def login(db: Database, tenant_id: str | None = None) -> TenantContext:
    """A context minted for the test (as the auth middleware would) with a live login session."""
    ctx = mint(
        tenant_id=tenant_id or str(uuid.uuid4()), user_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()),
        role="member",
    )  # fmt: skip
    db.transact(lambda tr: identity.set_live(tr, ctx.tenant_id, ctx.session_id, ctx.user_id, "member"))
    return ctx


def workspace(db: Database, ctx: TenantContext, status: str = "ready") -> WorkspaceRecord:
    at = datetime.fromtimestamp(T0, UTC)
    record = WorkspaceRecord(
        id=str(uuid.uuid4()), tenant_id=ctx.tenant_id, user_id=ctx.user_id, session_id=str(uuid.uuid4()),
        status="requested", created_at=at, updated_at=at,
    )  # fmt: skip
    path = {"requested": [], "provisioning": ["provisioning"], "ready": ["provisioning", "ready"]}[status]
    for step in path:
        endpoint = Endpoint("127.0.0.1", 4321) if step == "ready" else None
        record = lifecycle.advance(record, step, at, endpoint=endpoint)  # type: ignore[arg-type]
    db.transact(repository.save, record, None)
    return record


def stop(db: Database, record: WorkspaceRecord) -> None:
    def body(tr):  # type: ignore[no-untyped-def]
        current = repository.get(tr, record.tenant_id, record.id)
        repository.save(
            tr, lifecycle.advance(current, "stopping", current.updated_at, reason="stopped_by_user"), current
        )

    db.transact(body)


def test_ticket_grants_once_with_server_side_endpoint(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    out = tickets.issue_ticket(db, ctx, ws.id, now=T0)
    assert len(out.ticket) >= 43 and out.expires_in == 60
    assert out.websocket_url == f"wss://ide.example.com/workspaces/{ws.id}/"
    assert out.http_url == f"https://ide.example.com/workspaces/{ws.id}/"
    grant = tickets.consume_ticket(db, out.ticket, ws.id, now=T0 + 1)
    assert (grant.tenant_id, grant.user_id, grant.session_id, grant.workspace_id) == (
        ctx.tenant_id, ctx.user_id, ctx.session_id, ws.id,
    )  # fmt: skip
    assert grant.endpoint == Endpoint("127.0.0.1", 4321)
    assert grant.expires > T0 + 60
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, out.ticket, ws.id, now=T0 + 2)
    assert (info.value.status, info.value.reason) == (401, "reused")


def test_ticket_is_stored_only_as_a_digest(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    out = tickets.issue_ticket(db, ctx, ws.id, now=T0)
    everything = db.transact(lambda tr: tr.get_range(b"", b"\xff"))
    assert not any(out.ticket.encode() in key or out.ticket.encode() in value for key, value in everything)


@pytest.mark.parametrize(
    ("ticket", "reason"), [(None, "missing"), ("", "missing"), ("x" * 500, "malformed"), ("nope", "unknown")]
)
def test_bad_tickets_are_401(db, ticket, reason) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, ticket, ws.id, now=T0)
    assert (info.value.status, info.value.reason) == (401, reason)


def test_expired_ticket_is_401(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    out = tickets.issue_ticket(db, ctx, ws.id, now=T0)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, out.ticket, ws.id, now=T0 + 60)
    assert (info.value.status, info.value.reason) == (401, "expired")


def test_ticket_for_another_workspace_is_403_and_spent(db) -> None:
    ctx = login(db)
    mine, other = workspace(db, ctx), workspace(db, ctx)
    out = tickets.issue_ticket(db, ctx, mine.id, now=T0)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, out.ticket, other.id, now=T0)
    assert (info.value.status, info.value.reason) == (403, "other_workspace")
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, out.ticket, mine.id, now=T0)
    assert info.value.reason == "reused"


def test_other_tenants_ticket_is_403_at_my_workspace(db) -> None:
    alice, mallory = login(db), login(db)
    alices = workspace(db, alice)
    mallorys = workspace(db, mallory)
    out = tickets.issue_ticket(db, mallory, mallorys.id, now=T0)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, out.ticket, alices.id, now=T0)
    assert info.value.status == 403


def test_tickets_only_for_own_ready_workspace(db) -> None:
    alice, bob = login(db), login(db)
    starting = workspace(db, alice, "provisioning")
    with pytest.raises(Conflict) as info:
        tickets.issue_ticket(db, alice, starting.id, now=T0)
    assert info.value.code == "workspace_not_ready"
    ready = workspace(db, alice)
    with pytest.raises(NotFound):
        tickets.issue_ticket(db, bob, ready.id, now=T0)
    same_tenant_bob = login(db, alice.tenant_id)
    with pytest.raises(NotFound):
        tickets.issue_ticket(db, same_tenant_bob, ready.id, now=T0)


def test_revoked_login_session_and_stopped_workspace_refuse(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    first, second = tickets.issue_ticket(db, ctx, ws.id, now=T0), tickets.issue_ticket(db, ctx, ws.id, now=T0)
    grant = tickets.consume_ticket(db, first.ticket, ws.id, now=T0)
    assert tickets.grant_still_valid(db, grant, now=T0)
    db.transact(lambda tr: identity.clear_live(tr, ctx.tenant_id, ctx.session_id))  # logout
    assert not tickets.grant_still_valid(db, grant, now=T0)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, second.ticket, ws.id, now=T0)
    assert (info.value.status, info.value.reason) == (401, "session_revoked")

    ctx2 = login(db)
    ws2 = workspace(db, ctx2)
    grant2 = tickets.consume_ticket(db, tickets.issue_ticket(db, ctx2, ws2.id, now=T0).ticket, ws2.id, now=T0)
    pending = tickets.issue_ticket(db, ctx2, ws2.id, now=T0)
    stop(db, ws2)
    assert not tickets.grant_still_valid(db, grant2, now=T0)
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, pending.ticket, ws2.id, now=T0)
    assert (info.value.status, info.value.reason) == (403, "workspace_not_ready")
    assert not tickets.grant_still_valid(db, grant2, now=grant2.expires)


def test_cookie_session_is_bound_like_the_ticket(db) -> None:
    ctx = login(db)
    ws, other = workspace(db, ctx), workspace(db, ctx)
    grant = tickets.consume_ticket(db, tickets.issue_ticket(db, ctx, ws.id, now=T0).ticket, ws.id, now=T0)
    cookie = tickets.open_cookie_session(db, grant, now=T0)
    header = cookie.header()
    assert f"Path=/workspaces/{ws.id}/" in header
    for attribute in ("HttpOnly", "SameSite=Strict", "Secure"):
        assert attribute in header
    assert 0 < cookie.max_age <= get_settings().workspace_cookie_ttl
    again = tickets.check_cookie(db, cookie.value, ws.id, now=T0 + 5)
    assert (again.user_id, again.endpoint, again.expires) == (grant.user_id, grant.endpoint, grant.expires)
    tickets.check_cookie(db, cookie.value, ws.id, now=T0 + 6)  # reusable, unlike a ticket
    with pytest.raises(RelayDenied) as info:
        tickets.check_cookie(db, cookie.value, other.id, now=T0 + 5)
    assert info.value.status == 403
    with pytest.raises(RelayDenied) as info:
        tickets.check_cookie(db, cookie.value, ws.id, now=grant.expires)
    assert (info.value.status, info.value.reason) == (401, "expired")
    tickets.close_cookie_session(db, cookie.value)
    with pytest.raises(RelayDenied) as info:
        tickets.check_cookie(db, cookie.value, ws.id, now=T0 + 5)
    assert info.value.reason == "unknown"


def test_sweep_clears_only_expired_entries(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    old = tickets.issue_ticket(db, ctx, ws.id, now=T0)
    fresh = tickets.issue_ticket(db, ctx, ws.id, now=T0 + 300)
    assert tickets.sweep_expired(db, now=T0 + 310) == 1
    with pytest.raises(RelayDenied) as info:
        tickets.consume_ticket(db, old.ticket, ws.id, now=T0 + 310)
    assert info.value.reason == "unknown"
    tickets.consume_ticket(db, fresh.ticket, ws.id, now=T0 + 310)


def test_activity_is_throttled(db) -> None:
    ctx = login(db)
    ws = workspace(db, ctx)
    assert tickets.record_activity(db, ctx.tenant_id, ws.id, now=T0)
    assert not tickets.record_activity(db, ctx.tenant_id, ws.id, now=T0 + 10)
    assert db.transact(tickets.last_activity, ctx.tenant_id, ws.id) == T0
    assert tickets.record_activity(db, ctx.tenant_id, ws.id, now=T0 + 61)
    assert db.transact(tickets.last_activity, ctx.tenant_id, ws.id) == T0 + 61
