from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from coditect import keyspace
from coditect.errors import Conflict, NotFound
from coditect.identity.context import TenantContext
from coditect.sessions import conversations, fork, hooks, purge, service
from coditect.sessions.models import ConversationPatch, PageQuery
from coditect.store import Database
from tests.unit.sessions.helpers import all_messages, all_pairs, append, make_conversation, make_session


def _convs(db: Database, ctx: TenantContext, sid: str) -> list[Any]:
    return conversations.page(db, ctx, sid, PageQuery(limit=200))[0]


def _snapshot(
    db: Database, ctx: TenantContext, sid: str
) -> list[tuple[str, str | None, int, list[tuple[int, str, str]]]]:
    out = []
    for c in _convs(db, ctx, sid):
        msgs = [(m.seq, m.role, m.content) for m in all_messages(db, ctx, c.id)]
        out.append((c.title, c.agent, c.message_count, msgs))
    return out


@pytest.fixture
def source(db: Database, alice: TenantContext) -> str:
    sid = make_session(db, alice, "src")
    for c in range(3):
        cid = make_conversation(db, alice, sid, f"conv{c}")
        for i in range(20 + c):
            append(db, alice, cid, f"{c}:{i}" + ("y" * 25_000 if i == 3 else ""))
    return sid


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fork, "STEP_MESSAGES", 7)  # many bounded copy transactions


def test_fork_copies_conversations_and_messages(
    db: Database, alice: TenantContext, source: str, small_steps: None
) -> None:
    target = fork.fork(db, alice, source, None)
    assert target.parent_id == source and target.name == "src (fork)" and target.state == "live"
    assert _snapshot(db, alice, target.id) == _snapshot(db, alice, source)
    src_ids = {c.id for c in _convs(db, alice, source)}
    assert not src_ids & {c.id for c in _convs(db, alice, target.id)}
    src_msg_ids = {m.id for c in _convs(db, alice, source) for m in all_messages(db, alice, c.id)}
    dst_msg_ids = {m.id for c in _convs(db, alice, target.id) for m in all_messages(db, alice, c.id)}
    assert len(dst_msg_ids) == len(src_msg_ids) == 63 and not src_msg_ids & dst_msg_ids
    # Nothing of the staging is left: no progress record, no lease, no queue entry.
    for key, _ in all_pairs(db):
        assert b"fork_at" not in key and b"forking" not in key
    assert db.transact(lambda tr: tr.get_range(*keyspace.PURGE_QUEUE.range())) == []


def test_fork_is_independent_in_both_directions(db: Database, alice: TenantContext, source: str) -> None:
    target = fork.fork(db, alice, source, "copy").id
    before = _snapshot(db, alice, source)
    t_conv, s_conv = _convs(db, alice, target)[0], _convs(db, alice, source)[0]
    append(db, alice, t_conv.id, "only in fork")
    conversations.update(db, alice, t_conv.id, ConversationPatch(title="renamed in fork"))
    conversations.delete(db, alice, _convs(db, alice, target)[1].id)
    assert _snapshot(db, alice, source) == before
    fork_state = _snapshot(db, alice, target)
    append(db, alice, s_conv.id, "only in source")
    conversations.update(db, alice, s_conv.id, ConversationPatch(title="renamed in source"))
    service.delete(db, alice, source, budget_seconds=30)
    assert _snapshot(db, alice, target) == fork_state
    assert fork_state[0][0] == "renamed in fork" and fork_state[0][3][-1][2] == "only in fork"


def test_fork_is_a_copy_as_of_its_first_transaction(
    db: Database, alice: TenantContext, source: str, small_steps: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages appended and conversations renamed while the copy runs are not in the fork."""
    before = _snapshot(db, alice, source)
    first = _convs(db, alice, source)[0]
    real_step, calls = fork._copy_step, []

    def step_with_writes(tr, tid, target):  # type: ignore[no-untyped-def]
        if not calls:
            append(db, alice, first.id, "during the fork")
            conversations.update(db, alice, first.id, ConversationPatch(title="renamed during"))
        calls.append(1)
        return real_step(tr, tid, target)

    monkeypatch.setattr(fork, "_copy_step", step_with_writes)
    target = fork.fork(db, alice, source, None)
    assert len(calls) > 5
    assert _snapshot(db, alice, target.id) == before
    assert _snapshot(db, alice, source)[0][3][-1][2] == "during the fork"


def test_conversation_delete_waits_for_a_running_fork(
    db: Database, alice: TenantContext, source: str
) -> None:
    first = _convs(db, alice, source)[0]
    seen: list[Exception] = []

    def try_delete(db_: Database, tid: str, src: str, dst: str, at: bytes) -> None:
        try:
            conversations.delete(db_, alice, first.id)
        except Conflict as exc:
            seen.append(exc)

    hooks.register_fork_hook(try_delete)
    try:
        target = fork.fork(db, alice, source, None)
    finally:
        hooks.unregister(try_delete)
    assert len(seen) == 1 and seen[0].code == "fork_in_progress"
    assert len(_convs(db, alice, target.id)) == 3
    conversations.delete(db, alice, first.id)  # the lease is gone with the published fork
    assert len(_convs(db, alice, source)) == 2


@pytest.fixture
def failing_hook() -> Iterator[list[str]]:
    targets: list[str] = []

    def broken(db: Database, tid: str, src: str, dst: str, at: bytes) -> None:
        targets.append(dst)
        raise RuntimeError("the files area failed")

    hooks.register_fork_hook(broken)
    yield targets
    hooks.unregister(broken)


def _mentions(db: Database, sid: str) -> list[bytes]:
    return [k for k, v in all_pairs(db) if sid.encode() in k or sid.encode() in v]


def test_a_failed_fork_leaves_nothing(
    db: Database, alice: TenantContext, source: str, failing_hook: list[str]
) -> None:
    with pytest.raises(RuntimeError):
        fork.fork(db, alice, source, None)
    (target,) = failing_hook
    assert _mentions(db, target) == []
    records, _ = service.page(db, alice, service.SessionListQuery(archived="all"))
    assert [r.id for r in records] == [source]


def test_deleting_the_source_aborts_the_fork(
    db: Database, alice: TenantContext, source: str, small_steps: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step, targets = fork._copy_step, []

    def step_then_delete(tr, tid, target):  # type: ignore[no-untyped-def]
        if not targets:
            targets.append(target)
            service.delete(db, alice, source, budget_seconds=0)
        return real_step(tr, tid, target)

    monkeypatch.setattr(fork, "_copy_step", step_then_delete)
    with pytest.raises(NotFound):
        fork.fork(db, alice, source, None)
    purge.purge_pending(db, budget_seconds=30)
    assert _mentions(db, targets[0]) == [] and _mentions(db, source) == []


def test_a_fork_abandoned_by_a_crash_is_purged_after_its_deadline(
    db: Database, alice: TenantContext, source: str
) -> None:
    target = "0f0f0f0f-0000-4000-8000-000000000001"
    overdue = int((time.time() - 1) * 1_000_000)
    db.transact(fork._begin, alice, source, target, None, overdue)  # the process died right after
    db.transact(fork._copy_step, alice.tenant_id, target)
    with pytest.raises(NotFound):
        service.get(db, alice, target)
    assert fork.forks_in_progress(db.create_transaction(), alice.tenant_id, source) == []  # lease expired
    assert purge.purge_pending(db, budget_seconds=30) == 1
    assert _mentions(db, target) == []
    assert len(_convs(db, alice, source)) == 3


def test_fork_of_someone_elses_session_is_404(
    db: Database, alice: TenantContext, bob_same_tenant: TenantContext, source: str
) -> None:
    with pytest.raises(NotFound):
        fork.fork(db, bob_same_tenant, source, None)
    records, _ = service.page(db, bob_same_tenant, service.SessionListQuery(archived="all"))
    assert records == []
