"""Deleting a session: mark it, then clear everything under it in bounded, resumable steps.

1. `mark_deleting` (one transaction, in the DELETE request): `state = deleting` — every read path
   checks the state, and the record's index entries (by owner, by parent) exist only while live,
   so the session vanishes from every read and listing at once — and a purge-queue entry
   `keyspace.PURGE_QUEUE (due_us, tid, sid)` is written.
2. `purge_session` then runs steps, each its own transaction of at most `STEP_KEYS` keys /
   `STEP_BYTES` bytes, deriving what is left from the data itself (no progress record to corrupt):
   a. every registered purge hook until it returns True (data of other areas outside the
      subspace; they run first so they can still read the session's own data to find it);
   b. conversation records with their `conv_ix` entries;
   c. the `s_by_parent` entries of this session's forks (the forks stay; their parent is gone);
   d. the session subspace, except the record;
   e. the record, the queue entry and, for a failed fork, the lease on its source.
   A process killed at any point leaves the queue entry, and any later run resumes at the first
   step with something left: the DELETE request purges for `PURGE_BUDGET_SECONDS` (functions/sessions)
   seconds, the ops cron's `gc` job calls `purge_pending` for the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coditect import keyspace
from coditect.sessions import hooks, repository
from coditect.store import Database, KeyValue, Transaction

log = logging.getLogger(__name__)

STEP_KEYS = 1_000
STEP_BYTES = 1_000_000
CONVERSATIONS_PER_STEP = 200


def queue_key(due_us: int, tenant_id: str, session_id: str) -> bytes:
    return keyspace.PURGE_QUEUE.key(due_us, tenant_id, session_id)


def mark_deleting(tr: Transaction, tenant_id: str, session_id: str, due_us: int) -> None:
    """Make the session invisible and queue its purge (callers check ownership first)."""
    table = repository.sessions(tenant_id)
    record = table.get(tr, session_id, repository.REC)
    if record is None or record.state == "deleting":
        return
    if record.purge_due_us is not None:  # a pending fork: move its queue entry to `due_us`
        tr.clear(queue_key(record.purge_due_us, tenant_id, session_id))
    marked = record.model_copy(update={"state": "deleting", "purge_due_us": due_us})
    table.put(tr, (session_id, repository.REC), marked, previous=record)
    tr.set(queue_key(due_us, tenant_id, session_id), b"delete")


def _bounded_clear(tr: Transaction, begin: bytes, end: bytes) -> bool:
    """Clear the first ≤ STEP_KEYS keys / ≈ STEP_BYTES of [begin, end); True when none were left."""
    kvs = tr.get_range(begin, end, limit=STEP_KEYS)
    if not kvs:
        return True
    size, last = 0, kvs[-1][0]
    for key, value in kvs:
        size += len(key) + len(value)
        if size > STEP_BYTES:
            last = key
            break
    tr.clear_range(begin, last + b"\x00")
    return False


def _conversations_step(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    table = repository.conversations(tenant_id)
    rows = table.scan(tr, session_id, repository.CONV, limit=CONVERSATIONS_PER_STEP)
    for pk, record in rows:
        table.delete(tr, pk, record)
    return len(rows) < CONVERSATIONS_PER_STEP


def _forks_step(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    return _bounded_clear(tr, *keyspace.tenant(tenant_id).sub(keyspace.SESSIONS_BY_PARENT).range(session_id))


def _subspace_step(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    space = keyspace.session(tenant_id, session_id)
    begin, end = space.range()
    record = space.key(repository.REC)
    # The record (and its blob chunks) stays until the last step: it is the tombstone.
    return _bounded_clear(tr, begin, record) and _bounded_clear(tr, record + b"\xff", end)


def _finish(tr: Transaction, tenant_id: str, session_id: str, due_us: int | None) -> None:
    table = repository.sessions(tenant_id)
    record = table.get(tr, session_id, repository.REC)
    if record is not None:
        if record.state == "live":
            raise RuntimeError(f"refusing to purge live session {session_id}")
        if record.parent_id is not None:  # the lease of a fork that never published
            tr.clear(keyspace.session(tenant_id, record.parent_id).key(repository.FORKING, session_id))
        if record.purge_due_us is not None:
            tr.clear(queue_key(record.purge_due_us, tenant_id, session_id))
        table.delete(tr, (session_id, repository.REC), record)
    if due_us is not None:
        tr.clear(queue_key(due_us, tenant_id, session_id))


def _purgeable(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    record = repository.sessions(tenant_id).get(tr, session_id, repository.REC)
    return record is None or record.state == "deleting"


def _batch(
    tr: Transaction, step: Callable[[Transaction, str, str], bool], tenant_id: str, session_id: str
) -> bool:
    tr.set_batch_priority()  # a purge is bulk work: it yields to user traffic on FoundationDB
    return step(tr, tenant_id, session_id)


def _steps() -> list[Callable[[Transaction, str, str], bool]]:
    return [*hooks.purge_hooks(), _conversations_step, _forks_step, _subspace_step]


def purge_session(
    db: Database, tenant_id: str, session_id: str, *, deadline: float, due_us: int | None = None
) -> bool:
    """Purge a session marked deleting, until done (True) or `deadline` (time.monotonic()).

    Refuses (RuntimeError) a session that is live or pending: only `mark_deleting` makes a
    session purgeable, and nothing turns a deleting session back.
    """
    if not db.transact(_purgeable, tenant_id, session_id):
        raise RuntimeError(f"session {session_id} is not marked deleting")
    for step in _steps():
        while not db.transact(_batch, step, tenant_id, session_id):
            if time.monotonic() >= deadline:
                return False
    db.transact(_finish, tenant_id, session_id, due_us)
    return True


def _claim(tr: Transaction, due_us: int, tenant_id: str, session_id: str) -> bool:
    """Prepare a queue entry for purging: False when there is nothing to purge (entry dropped)."""
    record = repository.sessions(tenant_id).get(tr, session_id, repository.REC)
    if record is not None and record.state == "live":
        tr.clear(queue_key(due_us, tenant_id, session_id))  # stale entry of a published fork
        return False
    if record is not None and record.state == "pending":  # a fork that overran its deadline
        mark_deleting(tr, tenant_id, session_id, due_us)
    return True


def _due_entries(tr: Transaction, due_before: bytes) -> list[KeyValue]:
    return tr.get_range(keyspace.PURGE_QUEUE.range()[0], due_before, limit=100)


def purge_pending(db: Database, *, budget_seconds: float) -> int:
    """Purge every queued session that is due, for up to `budget_seconds`; return how many were
    finished. Called by the ops cron's `gc` job; safe to run in several processes at once."""
    deadline = time.monotonic() + budget_seconds
    finished = 0
    while time.monotonic() < deadline:
        due_before = keyspace.PURGE_QUEUE.key(int(time.time() * 1_000_000))
        entries = db.transact(_due_entries, due_before)
        if not entries:
            break
        for key, _ in entries:
            due, tenant_id, session_id = keyspace.PURGE_QUEUE.unpack(key)
            if not db.transact(_claim, due, tenant_id, session_id):
                continue
            fields = {"tenant_id": tenant_id, "session_id": session_id}
            try:
                done = purge_session(db, tenant_id, session_id, deadline=deadline, due_us=due)
            except Exception:
                log.exception("purge failed; retried on the next run", extra={"fields": fields})
                continue
            if done:
                finished += 1
                log.info("purged session", extra={"fields": fields})
            if time.monotonic() >= deadline:
                return finished
    return finished
