"""Workspace records and their indexes, written together in the caller's transaction.

Layout under `keyspace.tenant(tid).sub(keyspace.WORKSPACES)` (FoundationDB simple-indexes)::

    ("rec", wid)                          → WorkspaceRecord (RecordCodec, via repo.blobs)
    ("by_user", uid, created_us, wid)     → b""       the caller's listing, newest first
    ("by_session", session_id, wid)       → b""       purge hook: every workspace of a session
    ("active_user", uid, wid)             → b""       per-user limit (status in ACTIVE)
    ("active", wid)                       → b""       per-tenant limit (status in ACTIVE)
    ("active_session", session_id)        → pack(wid) one active workspace per session (unique)
    ("idem", uid, key)                    → pack(wid) Idempotency-Key of an allocation (unique)
    ("state", wid)                        → pack((status,)) small key: grant checks read and
                                                      the relay watches it (changes only on a
                                                      status change, never on activity)
    ("activity", wid)                     → pack((unix seconds,)) last relayed activity
    ("sync", wid)                         → SyncStatus JSON: the sync agent's latest report
                                                      (coditect.workspaces.sync_reports)

and, global, `keyspace.WORKSPACE_INDEX`::

    ("live", wid)                         → pack((tid,)) while status in LIVE: the reconciler's
                                                      list, and wid → tenant for system paths

Tenant ids: API paths pass `ctx.tenant_id` (from `TenantContext`); system paths (provisioner
events, reconcile, tickets) pass the tenant id found in server-written state, never client input.
"""

from __future__ import annotations

import functools
from typing import Any

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.keyspace import Subspace
from coditect.repo import Index, RecordCodec, Table
from coditect.store import Transaction
from coditect.workspaces.models import ACTIVE, LIVE, WorkspaceRecord

CODEC = RecordCodec(WorkspaceRecord, 1)


def space(tenant_id: str) -> Subspace:
    return keyspace.tenant(tenant_id).sub(keyspace.WORKSPACES)


def _micros(record: WorkspaceRecord) -> int:
    return int(record.created_at.timestamp() * 1_000_000)


@functools.lru_cache(maxsize=256)
def table(tenant_id: str) -> Table[WorkspaceRecord]:
    s = space(tenant_id)
    return Table(
        s.sub("rec"),
        CODEC,
        [
            Index("by_user", s.sub("by_user"), lambda r: (r.user_id, _micros(r))),
            Index("by_session", s.sub("by_session"), lambda r: (r.session_id,)),
            Index(
                "active_user", s.sub("active_user"), lambda r: (r.user_id,) if r.status in ACTIVE else None
            ),
            Index("active", s.sub("active"), lambda r: () if r.status in ACTIVE else None),
            Index(
                "active_session",
                s.sub("active_session"),
                lambda r: (r.session_id,) if r.status in ACTIVE else None,
                unique=True,
            ),
            Index(
                "idem",
                s.sub("idem"),
                lambda r: (r.user_id, r.idempotency_key) if r.idempotency_key else None,
                unique=True,
            ),
        ],
    )


def state_key(tenant_id: str, workspace_id: str) -> bytes:
    """The small key holding only the status: read by grant checks, watched by the relay."""
    return space(tenant_id).key("state", workspace_id)


def activity_key(tenant_id: str, workspace_id: str) -> bytes:
    return space(tenant_id).key("activity", workspace_id)


def live_key(workspace_id: str) -> bytes:
    return keyspace.WORKSPACE_INDEX.key("live", workspace_id)


def get(
    tr: Transaction, tenant_id: str, workspace_id: str, *, snapshot: bool = False
) -> WorkspaceRecord | None:
    return table(tenant_id).get(tr, workspace_id, snapshot=snapshot)


def save(tr: Transaction, record: WorkspaceRecord, previous: WorkspaceRecord | None) -> None:
    """Write `record` with every index entry; `previous` is the stored version (None when new).

    Raises `repo.UniqueViolation` ("active_session"/"idem") when another record holds the value.
    """
    table(record.tenant_id).put(tr, (record.id,), record, previous=previous)
    if previous is None or previous.status != record.status:
        tr.set(state_key(record.tenant_id, record.id), fdbtuple.pack((record.status,)))
    if record.status in LIVE:
        tr.set(live_key(record.id), fdbtuple.pack((record.tenant_id,)))
    else:
        tr.clear(live_key(record.id))


def delete(tr: Transaction, record: WorkspaceRecord) -> None:
    """Remove the record, its indexes and its small keys (session purge)."""
    table(record.tenant_id).delete(tr, (record.id,), record)
    tr.clear(state_key(record.tenant_id, record.id))
    tr.clear(activity_key(record.tenant_id, record.id))
    tr.clear(space(record.tenant_id).key("sync", record.id))
    tr.clear(live_key(record.id))


def status_of(tr: Transaction, tenant_id: str, workspace_id: str) -> str | None:
    """The status from the small state key (one point read), None when there is no workspace."""
    raw = tr.get(state_key(tenant_id, workspace_id))
    return None if raw is None else str(fdbtuple.unpack(raw)[0])


def tenant_of(tr: Transaction, workspace_id: str) -> str | None:
    """The tenant of a live workspace (system paths only), None when it is not live."""
    raw = tr.get(live_key(workspace_id))
    return None if raw is None else str(fdbtuple.unpack(raw)[0])


def live_workspaces(tr: Transaction, *, after: str | None = None, limit: int = 500) -> list[tuple[str, str]]:
    """`(workspace_id, tenant_id)` of live workspaces in id order, resuming after `after`."""
    begin, end = keyspace.WORKSPACE_INDEX.range("live")
    if after is not None:
        begin = live_key(after) + b"\x00"
    rows = tr.get_range(begin, end, limit=limit)
    return [(keyspace.WORKSPACE_INDEX.unpack(key)[1], fdbtuple.unpack(value)[0]) for key, value in rows]


def count_active(tr: Transaction, tenant_id: str, user_id: str | None, *, stop_at: int) -> int:
    """Active workspaces of the user (or of the tenant when `user_id` is None), counting at most
    `stop_at` (a limit check never needs more, and it bounds the read)."""
    if user_id is not None:
        begin, end = table(tenant_id).indexes["active_user"].subspace.range(user_id)
    else:
        prefix = table(tenant_id).indexes["active"].subspace.raw_prefix
        begin, end = prefix + b"\x00", prefix + b"\xff"
    return len(tr.get_range(begin, end, limit=stop_at))


def by_session(tr: Transaction, tenant_id: str, session_id: str, *, limit: int = 0) -> list[WorkspaceRecord]:
    """The session's workspaces (the first `limit` by id when given: bounded steps read only those)."""
    t = table(tenant_id)
    out = []
    for pk in t.find(tr, "by_session", session_id, limit=limit):
        record = t.get(tr, *pk)
        if record is not None:
            out.append(record)
    return out


def active_for_session(tr: Transaction, tenant_id: str, session_id: str) -> WorkspaceRecord | None:
    pk = table(tenant_id).lookup(tr, "active_session", session_id)
    return None if pk is None else get(tr, tenant_id, pk[0])


def by_idempotency_key(tr: Transaction, tenant_id: str, user_id: str, key: str) -> WorkspaceRecord | None:
    pk = table(tenant_id).lookup(tr, "idem", user_id, key)
    return None if pk is None else get(tr, tenant_id, pk[0])


def user_index_range(tenant_id: str, user_id: str) -> tuple[bytes, bytes]:
    return table(tenant_id).indexes["by_user"].subspace.range(user_id)


def workspace_id_from_user_index(tenant_id: str, key: bytes) -> str:
    parts: tuple[Any, ...] = table(tenant_id).indexes["by_user"].subspace.unpack(key)
    return str(parts[-1])
