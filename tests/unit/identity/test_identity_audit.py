"""coditect.audit: append-only, commit-ordered, newest first, paged, per tenant, deduped retries."""

from __future__ import annotations

import uuid

from coditect import audit
from coditect.store import Database


def rec(db: Database, tid: str, n: int, event_id: str | None = None) -> None:
    db.transact(
        lambda tr: audit.record(
            tr,
            tid,
            type=f"e{n}",
            actor_id=None,
            session_id=None,
            request_id=f"r{n}",
            ip="10.0.0.1",
            outcome="success",
            event_id=event_id,
        )
    )


def test_newest_first_paged_and_per_tenant(db: Database) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for n in range(5):
        rec(db, a, n)
    rec(db, b, 99)
    page1, cursor = db.transact(lambda tr: audit.list_events(tr, a, limit=3, cursor=None))
    assert [e.type for e in page1] == ["e4", "e3", "e2"] and cursor
    page2, end = db.transact(lambda tr: audit.list_events(tr, a, limit=3, cursor=cursor))
    assert [e.type for e in page2] == ["e1", "e0"] and end is None
    only_b, _ = db.transact(lambda tr: audit.list_events(tr, b, limit=10, cursor=None))
    assert [e.type for e in only_b] == ["e99"] and only_b[0].tenant_id == b


def test_a_retried_commit_is_listed_once(db: Database) -> None:
    tid, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    db.faults.commit_unknown_after = 1
    rec(db, tid, 1, event_id)
    events, _ = db.transact(lambda tr: audit.list_events(tr, tid, limit=10, cursor=None))
    assert [e.id for e in events] == [event_id]
