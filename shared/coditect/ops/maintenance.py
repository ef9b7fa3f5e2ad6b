"""The `reconcile` and `gc` jobs: each phase is an area's own bounded, resumable routine.

reconcile → `coditect.workspaces.reconcile.reconcile` with the configured provisioner backend
(orphans both ways, crashed, stuck starts, idle stop, max lifetime, unfinished stops; it also
re-drains the transactional outbox; expired tickets are swept by gc, below).

gc, phases in order, each given an equal share of what is left of the budget:

1. files: `coditect.files.gc.collect_garbage` (stale uploads, trash, unreferenced manifests/chunks);
2. sessions: `coditect.sessions.purge.purge_pending` (deleted sessions' data);
3. workspaces: `tickets.sweep_expired` (expired relay tickets and cookie sessions);
4. throttles (`sweep_throttles`, here: the rate limiter has no cleanup of its own): records idle
   for `throttle_retention` seconds, i.e. whose window and block both ended that long ago — every
   policy's window is far shorter, so such a record would be reset on its next use anyway;
5. refresh families (`sweep_refresh_families`, here: identity purges only the caller's own
   expired sessions at login): the refresh-token digest index is scanned, and a login session that
   ended (revoked, past its absolute or idle lifetime) more than `refresh_family_retention` seconds
   ago is deleted with every digest of its family (identity's key layout: digests at
   `TOKEN_DIGESTS ("refresh", digest) → (tid, sid, generation)`); digests of vanished sessions go too;
6. events: `coditect.events.prune_dedupe` (dedupe marks past `dedupe_retention`).

Sweeps 4 and 5 read a batch of ≤ `SWEEP_BATCH` keys per transaction from a cursor saved under
`records.progress_key(...)` when the budget runs out, so the next run resumes where this one
stopped; each decision re-reads what it deletes in the same transaction (a concurrent login
conflicts and wins).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from coditect import keyspace
from coditect.identity import repository as identity
from coditect.identity.models import AuthSessionRecord
from coditect.ops import records
from coditect.ops.runner import JobContext, Result, Status
from coditect.store import Database, Transaction

SWEEP_BATCH = 500
# coditect.ratelimit's record: window_start, count, strikes, blocked_until (big-endian).
_THROTTLE = struct.Struct(">dIId")
Decide = Callable[[Transaction, bytes, bytes], bool]  # (tr, key, value) → cleared it


def reconcile(ctx: JobContext) -> Result:
    from coditect.workspaces import backends
    from coditect.workspaces.reconcile import reconcile as reconcile_workspaces

    provisioner = backends.provisioner(ctx.settings)
    counts = reconcile_workspaces(
        ctx.db, provisioner, now=ctx.now, budget_seconds=ctx.remaining(), settings=ctx.settings
    )
    status: Status = (
        "incomplete" if counts["budget_exhausted"] else "warn" if counts["backend_unavailable"] else "ok"
    )
    done = {k: v for k, v in counts.items() if v}
    return Result(
        status, {k: float(v) for k, v in counts.items()}, f"{ctx.settings.workspace_backend}: {done}"
    )


def sweep(
    db: Database, name: str, begin: bytes, end: bytes, decide: Decide, deadline: float
) -> tuple[int, bool]:
    """Clear the keys of [begin, end) that `decide` says to, resuming at the saved cursor;
    (cleared, complete)."""
    progress = records.progress_key(name)
    saved = records.read(db, progress) or {}
    start = bytes.fromhex(saved["after"]) if saved.get("after") else begin

    def step(tr: Transaction, lo: bytes) -> tuple[int, bytes | None]:
        tr.set_batch_priority()  # GC: yields to user traffic on FoundationDB
        rows = tr.get_range(lo, end, limit=SWEEP_BATCH)
        cleared = sum(1 for key, value in rows if decide(tr, key, value))
        return cleared, (rows[-1][0] + b"\x00") if len(rows) == SWEEP_BATCH else None

    total = 0
    cursor: bytes | None = start
    while cursor is not None:
        if time.monotonic() >= deadline:
            records.update(db, progress, after=cursor.hex())
            return total, False
        n, cursor = db.transact(step, cursor)
        total += n
    db.transact(lambda tr: tr.clear(progress))
    return total, True


def sweep_throttles(db: Database, *, now: float, retention: float, deadline: float) -> tuple[int, bool]:
    def stale(tr: Transaction, key: bytes, value: bytes) -> bool:
        if len(value) == _THROTTLE.size:
            window_start, _, _, blocked_until = _THROTTLE.unpack(value)
            if now - max(window_start, blocked_until) <= retention:
                return False
        tr.clear(key)  # idle long enough, or not a record of ours at all
        return True

    return sweep(db, "gc.throttle", *keyspace.THROTTLE.range(), stale, deadline)


def family_end(s: AuthSessionRecord, absolute_ttl: float, idle_ttl: float) -> float:
    """When the login session stopped (or will stop) being usable."""
    end = min(s.created_at + absolute_ttl, s.last_used_at + idle_ttl)
    return min(end, s.revoked_at) if s.revoked_at is not None else end


def sweep_refresh_families(
    db: Database, *, now: float, retention: float, absolute_ttl: float, idle_ttl: float, deadline: float
) -> tuple[int, bool]:
    import fdb.tuple as fdbtuple

    def spent(tr: Transaction, key: bytes, value: bytes) -> bool:
        tid, sid, _ = fdbtuple.unpack(value)
        session = identity.get_session(tr, str(tid), str(sid))
        if session is not None:
            if now - family_end(session, absolute_ttl, idle_ttl) <= retention:
                return False
            identity.delete_session(tr, session)  # record, by-user index entry, live marker
        tr.clear(key)  # this digest; the family's other digests follow in key order
        return True

    return sweep(db, "gc.refresh", *keyspace.TOKEN_DIGESTS.range("refresh"), spent, deadline)


def gc(ctx: JobContext) -> Result:
    """Every phase frees space: on a full disk it may use the store's reserve (store.space)."""
    from coditect.store import space

    with space.freeing():
        return _gc(ctx)


def _gc(ctx: JobContext) -> Result:
    from coditect.events import prune_dedupe
    from coditect.files.gc import collect_garbage
    from coditect.sessions.purge import purge_pending
    from coditect.workspaces import tickets

    s, db, counts = ctx.settings, ctx.db, {}
    phases = 6

    def share(done: int) -> float:
        return ctx.remaining() / (phases - done)

    files = collect_garbage(db, budget_seconds=share(0))
    counts.update({f"files_{k}": float(v) for k, v in files.items() if k != "complete"})
    complete = bool(files.get("complete", True))
    counts["sessions_purged"] = float(purge_pending(db, budget_seconds=share(1)))
    swept, deadline = 0, time.monotonic() + share(2)
    while True:
        n = tickets.sweep_expired(db, now=ctx.now, limit=SWEEP_BATCH)
        swept += n
        if n < SWEEP_BATCH or time.monotonic() >= deadline:
            complete = complete and n < SWEEP_BATCH
            break
    counts["tickets_swept"] = float(swept)
    n, ok = sweep_throttles(
        db, now=ctx.now, retention=s.throttle_retention, deadline=time.monotonic() + share(3)
    )
    counts["throttles_cleared"], complete = float(n), complete and ok
    n, ok = sweep_refresh_families(
        db, now=ctx.now, retention=s.refresh_family_retention, absolute_ttl=s.refresh_absolute_ttl,
        idle_ttl=s.refresh_idle_ttl, deadline=time.monotonic() + share(4),
    )  # fmt: skip
    counts["refresh_digests_cleared"], complete = float(n), complete and ok
    counts["dedupe_pruned"] = float(prune_dedupe(db, older_than=s.dedupe_retention, now=ctx.now))
    done = {k: v for k, v in counts.items() if v}
    return Result(
        "ok" if complete else "incomplete", counts, f"cleared {done}" if done else "nothing to clear"
    )
