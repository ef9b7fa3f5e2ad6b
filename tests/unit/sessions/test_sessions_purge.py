from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import fdb.tuple as fdbtuple
import pytest

from coditect import keyspace
from coditect.errors import NotFound
from coditect.identity.context import TenantContext
from coditect.sessions import conversations, fork, hooks, purge, service
from coditect.sessions.models import PageQuery, SessionListQuery
from coditect.store import Database, Transaction, open_store
from tests.unit.sessions import workers
from tests.unit.sessions.helpers import all_pairs, append, make_conversation, make_session

# A test area standing in for one that keeps a global index outside the session subspace.
TEST_AREA = keyspace.GLOBAL.sub("test_area")


def _purge_test_area(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    kvs = tr.get_range(*TEST_AREA.range(tenant_id, session_id), limit=500)
    if kvs:
        tr.clear_range(kvs[0][0], kvs[-1][0] + b"\x00")
    return len(kvs) < 500


@pytest.fixture
def test_area_hook() -> Iterator[None]:
    hooks.register_purge_hook(_purge_test_area)
    yield
    hooks.unregister(_purge_test_area)


def _populate(
    db: Database, ctx: TenantContext, sid: str, *, messages: int, files: int, globals_: int
) -> None:
    for c in range(2):
        cid = make_conversation(db, ctx, sid, f"c{c}")
        for i in range(messages // 2):
            append(db, ctx, cid, f"{c}-{i}" + "x" * (20_000 if i % 100 == 0 else 10))
    space = keyspace.session(ctx.tenant_id, sid).sub("files")

    def put_files(tr: Transaction, start: int) -> None:
        for i in range(start, min(start + 1000, files)):
            tr.set(space.key("meta", f"dir/file{i}"), b"m" * 50)

    for start in range(0, files, 1000):
        db.transact(put_files, start)

    def put_globals(tr: Transaction) -> None:
        for i in range(globals_):
            tr.set(TEST_AREA.key(ctx.tenant_id, sid, i), b"")

    db.transact(put_globals)


def _leftovers(db: Database, sid: str) -> list[tuple[object, ...]]:
    """Keys that name the session anywhere in their tuple, and values that point at it."""
    out = []
    for key, value in all_pairs(db):
        parts = fdbtuple.unpack(key)
        if sid in parts or sid.encode() in value:
            out.append(parts)
    return out


def _visible(db: Database, ctx: TenantContext) -> list[str]:
    records, _ = service.page(db, ctx, SessionListQuery(archived="all"))
    return [r.id for r in records]


@pytest.mark.slow
def test_delete_leaves_no_key_and_no_index_entry(
    db: Database, alice: TenantContext, test_area_hook: None
) -> None:
    sid = make_session(db, alice)
    keep = make_session(db, alice, "keep")
    _populate(db, alice, sid, messages=2000, files=3000, globals_=1200)
    child = fork.fork(db, alice, sid, None)  # an index entry under sid (s_by_parent) to clear
    conv_ids = [c.id for c in conversations.page(db, alice, sid, PageQuery())[0]]
    assert len(_leftovers(db, sid)) > 5000

    assert service.delete(db, alice, sid, budget_seconds=60) is True
    left = _leftovers(db, sid)
    # Only the fork's own record still names its (deleted) parent in its parent_id field.
    assert left == [(*keyspace.session(alice.tenant_id, child.id).prefix, "rec")]
    assert not any(str(c) in str(k) for k in all_pairs(db) for c in conv_ids)
    assert _visible(db, alice) == [child.id, keep]
    with pytest.raises(NotFound):
        service.get(db, alice, sid)


def test_delete_is_invisible_at_once_and_gc_finishes_it(
    db: Database, alice: TenantContext, test_area_hook: None
) -> None:
    sid = make_session(db, alice)
    _populate(db, alice, sid, messages=200, files=2500, globals_=1200)
    assert service.delete(db, alice, sid, budget_seconds=0) is False  # out of budget after one step
    with pytest.raises(NotFound):
        service.get(db, alice, sid)
    assert _visible(db, alice) == []
    assert _leftovers(db, sid)  # still there, queued
    assert purge.purge_pending(db, budget_seconds=60) == 1
    assert _leftovers(db, sid) == []
    assert purge.purge_pending(db, budget_seconds=5) == 0


def test_purge_refuses_a_live_session(db: Database, alice: TenantContext) -> None:
    sid = make_session(db, alice)
    with pytest.raises(RuntimeError):
        purge.purge_session(db, alice.tenant_id, sid, deadline=time.monotonic() + 5)
    assert service.get(db, alice, sid).id == sid


@pytest.mark.slow
def test_purge_resumes_after_the_deleting_process_is_killed(tmp_path: Path, alice: TenantContext) -> None:
    url = f"sqlite://{tmp_path / 'shared.db'}?synchronous=NORMAL"
    db = open_store(url)
    sid = make_session(db, alice)
    keep = make_session(db, alice, "keep")
    _populate(db, alice, sid, messages=1000, files=4000, globals_=0)
    space = keyspace.session(alice.tenant_id, sid)
    total = db.transact(lambda tr: len(tr.get_range(*space.range())))

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=workers.slow_delete, args=(url, alice.tenant_id, alice.user_id, sid))
    child.start()
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the purge is well under way, then kill it without warning
            left = db.transact(lambda tr: len(tr.get_range(*space.range())))
            if left < total * 0.7 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        child.join(10)
    assert child.exitcode == -signal.SIGKILL
    left = db.transact(lambda tr: len(tr.get_range(*space.range())))
    assert 0 < left < total
    # Marked before the kill: gone from every read; the rest waits in the queue.
    with pytest.raises(NotFound):
        service.get(db, alice, sid)
    assert _visible(db, alice) == [keep]
    assert purge.purge_pending(db, budget_seconds=60) == 1
    assert _leftovers(db, sid) == []
    assert service.get(db, alice, keep).name == "keep"


def test_purge_steps_run_at_batch_priority(
    db: Database, alice: TenantContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bulk work yields to user traffic on FoundationDB (a no-op on SQLite, so it is recorded here).
    from coditect.store.sqlite import SQLiteTransaction

    batch: list[int] = []
    monkeypatch.setattr(SQLiteTransaction, "set_batch_priority", lambda self: batch.append(id(self)))
    sid = make_session(db, alice)
    _populate(db, alice, sid, messages=20, files=20, globals_=0)
    assert service.delete(db, alice, sid, budget_seconds=60) is True
    assert batch  # every purge step's transaction asked for it
