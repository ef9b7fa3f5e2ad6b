from __future__ import annotations

import pytest
from pydantic import ValidationError

from coditect import keyspace
from coditect.errors import NotFound, PreconditionFailed
from coditect.identity.context import TenantContext
from coditect.sessions import access, repository, service
from coditect.sessions.models import SessionCreate, SessionListQuery, SessionPatch
from coditect.store import Database
from tests.unit.sessions.helpers import context_bypassing_auth, make_session


def _list(db: Database, ctx: TenantContext, archived: str = "false", limit: int = 50) -> list[str]:
    out, cursor = [], None
    while True:
        q = SessionListQuery(limit=limit, cursor=cursor, archived=archived)  # type: ignore[arg-type]
        records, cursor = service.page(db, ctx, q)
        out.extend(r.id for r in records)
        if cursor is None:
            return out


def _index_entries(db: Database, tid: str) -> list[tuple[object, ...]]:
    t = keyspace.tenant(tid)
    out: list[tuple[object, ...]] = []
    for name in (
        keyspace.SESSIONS_BY_OWNER,
        keyspace.SESSIONS_BY_OWNER_ARCHIVED,
        keyspace.SESSIONS_BY_PARENT,
    ):
        space = t.sub(name)
        out.extend(
            (name, *space.unpack(key)) for key, _ in db.transact(lambda tr, s=space: tr.get_range(*s.range()))
        )
    return out


def test_create_get_round_trip(db: Database, alice: TenantContext) -> None:
    created = service.create(db, alice, SessionCreate(name="proj", description="d", metadata={"k": [1, 2]}))
    got = service.get(db, alice, created.id)
    assert got == created and got.owner_id == alice.user_id and got.state == "live"


def test_other_user_and_other_tenant_see_nothing(
    db: Database, alice: TenantContext, bob_same_tenant: TenantContext
) -> None:
    sid = make_session(db, alice)
    mallory = context_bypassing_auth(user_id=alice.user_id)  # same user id, another tenant
    for other in (bob_same_tenant, mallory):
        with pytest.raises(NotFound):
            service.get(db, other, sid)
        with pytest.raises(NotFound):
            service.update(db, other, sid, SessionPatch(name="x"), None)
        with pytest.raises(NotFound):
            service.delete(db, other, sid, budget_seconds=1)
        assert _list(db, other, "all") == []
    assert service.get(db, alice, sid).name == "s"


def test_list_is_most_recently_updated_first_and_update_moves_the_index(
    db: Database, alice: TenantContext
) -> None:
    ids = [make_session(db, alice, f"s{i}") for i in range(5)]
    assert _list(db, alice) == ids[::-1]
    service.update(db, alice, ids[1], SessionPatch(description="touched"), None)
    assert _list(db, alice, limit=2) == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    # One entry per session per index: the old position was removed in the same transaction.
    entries = _index_entries(db, alice.tenant_id)
    assert len(entries) == 10


def test_archived_filter(db: Database, alice: TenantContext) -> None:
    a, b = make_session(db, alice, "a"), make_session(db, alice, "b")
    service.update(db, alice, a, SessionPatch(archived=True), None)
    assert _list(db, alice) == [b]
    assert _list(db, alice, "true") == [a]
    assert _list(db, alice, "all") == [a, b]


def test_if_match(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    first = service.get(db, alice, sid)
    second = service.update(db, alice, sid, SessionPatch(name="n2"), first.etag)
    assert second.etag != first.etag and second.version == first.version + 1
    with pytest.raises(PreconditionFailed):
        service.update(db, alice, sid, SessionPatch(name="n3"), first.etag)
    assert service.get(db, alice, sid) == second  # nothing written
    assert service.update(db, alice, sid, SessionPatch(name="n4"), "*").name == "n4"
    assert (
        service.update(
            db, alice, sid, SessionPatch(name="n5"), f'"x", {service.get(db, alice, sid).etag}'
        ).name
        == "n5"
    )
    with pytest.raises(PreconditionFailed):  # a weak tag never matches If-Match
        service.update(db, alice, sid, SessionPatch(name="n6"), "W/" + service.get(db, alice, sid).etag)


def test_update_is_idempotent_when_commit_result_is_unknown(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    etag = service.get(db, alice, sid).etag
    db.faults.commit_unknown_after = 1  # the commit applies, then reports 1021: the body reruns
    updated = service.update(db, alice, sid, SessionPatch(name="once"), etag)
    assert updated.name == "once" and updated.version == 2


def test_delete_is_idempotent_when_commit_result_is_unknown(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    db.faults.commit_unknown_after = 1
    assert service.delete(db, alice, sid, budget_seconds=5) is True
    with pytest.raises(NotFound):
        service.get(db, alice, sid)


def test_empty_patch_changes_nothing(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    before = service.get(db, alice, sid)
    assert service.update(db, alice, sid, SessionPatch(), None) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "metadata": {"blob": "x" * (16 * 1024)}},
        {"name": "ok", "metadata": [1]},
        {"name": "ok", "owner_id": "someone"},
    ],
)
def test_create_rejects(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SessionCreate.model_validate(body)


@pytest.mark.parametrize("body", [{"name": None}, {"archived": None}, {"metadata": None}, {"parent_id": "x"}])
def test_patch_rejects(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SessionPatch.model_validate(body)


def test_metadata_limit_is_on_serialized_utf8() -> None:
    # 16 KiB of JSON exactly is fine: {"k":"…"} with 16,384 - 8 one-byte characters.
    SessionCreate(name="n", metadata={"k": "x" * (16 * 1024 - 8)})
    with pytest.raises(ValidationError):
        SessionCreate(name="n", metadata={"k": "é" * (8 * 1024)})  # 16 KiB of characters, 2 bytes each


def test_access_gate_hides_non_live_sessions(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    table = repository.sessions(alice.tenant_id)
    record = db.transact(table.get, sid, repository.REC)
    for state in ("pending", "deleting"):
        db.transact(table.put, (sid, repository.REC), record.model_copy(update={"state": state}))
        with pytest.raises(NotFound):
            db.transact(access.require_session, alice, sid)
        assert _list(db, alice, "all") == []
