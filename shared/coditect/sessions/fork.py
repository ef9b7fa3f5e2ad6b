"""Forking a session: a copy of its conversations, messages (and, via hooks, files) as they were
at ONE point, made in bounded transactions and published atomically.

A session with many messages does not fit one transaction (5 s, 10 MB), so the fork is staged:

1. `_begin` (one transaction) — the fork point. Reads the source's conversations and their
   message counts WITH read conflicts (so a concurrent append or conversation change makes it
   retry rather than miss it), writes the target record as `pending` (no index entries: invisible
   to every read), copies of the conversation records under new ids, their counts, the progress
   record `("fork",)`, the fork point `("fork_at",)` = this transaction's own commit versionstamp
   (SET_VERSIONSTAMPED_VALUE), a lease `("forking", target)` on the source, and a purge-queue entry
   for the target due at the lease's deadline (crash insurance: an unpublished fork is purged).
2. `_copy_step` (many transactions, ≤ `STEP_MESSAGES` messages / ≈ `STEP_BYTES` each) copies the
   messages of each conversation whose key versionstamp is below the fork point. Messages are
   append-only, so that range is immutable: a later append has a larger versionstamp; deleting a
   conversation of a session under fork is refused (409) while the lease holds.
3. The fork hooks of other areas copy their data as of the fork point (`hooks`).
4. `_publish` (one transaction) flips the target to `live` (its index entries appear), clears the
   progress record, the lease and the queue entry. Every step checks that the source is still live
   and the target still pending, so deleting either side aborts the fork; the target is then
   purged. Copies keep the messages' versionstamps (hence their `seq` and order); message and
   conversation ids are derived deterministically from the target and the source id
   (`ids.derived_ordered` keeps the source's creation order, `ids.derived` for messages), so a
   retried step rewrites the same keyspace. Afterwards the two sessions share nothing.
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel

from coditect import keyspace
from coditect.errors import Conflict, NotFound
from coditect.identity.context import TenantContext
from coditect.repo import blobs, counters
from coditect.sessions import access, hooks, purge, repository, stamped
from coditect.sessions.ids import derived, derived_ordered
from coditect.sessions.models import CONVERSATIONS_MAX, NAME_MAX, SessionRecord, now
from coditect.store import Database, Transaction

FORK_DEADLINE_SECONDS = 600  # lease on the source; after it, `purge_pending` removes the target
STEP_MESSAGES = 500
STEP_BYTES = 2_000_000


class ForkAborted(NotFound):
    """The source was deleted (or the target purged) while the fork was being copied."""


class ForkProgress(BaseModel):
    source_id: str
    conversations: list[tuple[str, str]]  # (source cid, target cid) — the snapshot's conversations
    position: int = 0  # index into `conversations` being copied
    after: str | None = None  # hex of the last copied source key in that conversation


def forks_in_progress(tr: Transaction, tenant_id: str, session_id: str) -> list[str]:
    """Targets of unexpired forks of this session (a read with conflicts: a fork starting later
    makes the caller's transaction retry)."""
    space = keyspace.session(tenant_id, session_id).sub(repository.FORKING)
    now_us = int(time.time() * 1_000_000)
    return [
        space.unpack(key)[0]
        for key, expires in tr.get_range(*space.range())
        if int.from_bytes(expires, "big") > now_us
    ]


def check_forking(tr: Transaction, tenant_id: str, source_id: str, target_id: str) -> SessionRecord:
    """The pending target, after checking the source is still live; ForkAborted otherwise."""
    target = access.load_session(tr, tenant_id, target_id)
    source = access.load_session(tr, tenant_id, source_id)
    if target is None or target.state != "pending" or source is None or source.state != "live":
        raise ForkAborted()
    return target


def _fork_name(source: SessionRecord, name: str | None) -> str:
    if name is not None:
        return name
    suffix = " (fork)"
    return source.name[: NAME_MAX - len(suffix)] + suffix


def _begin(
    tr: Transaction, ctx: TenantContext, source_id: str, target_id: str, name: str | None, due_us: int
) -> None:
    tid = ctx.tenant_id
    if access.load_session(tr, tid, target_id) is not None:
        return  # begun by an earlier attempt (commit_unknown_result)
    source = access.require_session(tr, ctx, source_id)
    conv_table = repository.conversations(tid)
    convs = conv_table.scan(tr, source_id, repository.CONV, limit=CONVERSATIONS_MAX + 1)
    if len(convs) > CONVERSATIONS_MAX:
        raise Conflict(f"A session with more than {CONVERSATIONS_MAX} conversations cannot be forked.")
    pairs = []
    for _, conv in convs:
        new_id = derived_ordered(target_id, conv.id)
        pairs.append((conv.id, new_id))
        copy = conv.model_copy(update={"id": new_id, "session_id": target_id})
        conv_table.put(tr, (target_id, repository.CONV, new_id), copy, previous=None)
        count = counters.read(tr, repository.count_key(tid, source_id, conv.id))
        counters.add(tr, repository.count_key(tid, target_id, new_id), count)
    counters.add(tr, keyspace.session(tid, target_id).key(repository.NCONV), len(pairs))
    at = now()
    target = SessionRecord(
        id=target_id,
        owner_id=ctx.user_id,
        name=_fork_name(source, name),
        description=source.description,
        metadata=source.metadata,
        parent_id=source_id,
        created_at=at,
        updated_at=at,
        state="pending",
        purge_due_us=due_us,
    )
    repository.sessions(tid).put(tr, (target_id, repository.REC), target)
    space = keyspace.session(tid, target_id)
    progress = ForkProgress(source_id=source_id, conversations=pairs)
    blobs.write_value(tr, space.key(repository.FORK), progress.model_dump_json().encode())
    tr.set_versionstamped_value(space.key(repository.FORK_AT), stamped.VALUE_PLACEHOLDER)
    tr.set(keyspace.session(tid, source_id).key(repository.FORKING, target_id), due_us.to_bytes(8, "big"))
    tr.set(purge.queue_key(due_us, tid, target_id), b"fork")


def _progress(tr: Transaction, tenant_id: str, target_id: str) -> tuple[ForkProgress, bytes]:
    space = keyspace.session(tenant_id, target_id)
    raw = blobs.read_value(tr, space.key(repository.FORK))
    at = tr.get(space.key(repository.FORK_AT))
    if raw is None or at is None:
        raise ForkAborted()
    return ForkProgress.model_validate_json(raw), at


def _copy_step(tr: Transaction, tenant_id: str, target_id: str) -> bool:
    """Copy the next bounded batch of messages; True when every conversation is done."""
    progress, at = _progress(tr, tenant_id, target_id)
    check_forking(tr, tenant_id, progress.source_id, target_id)
    if progress.position >= len(progress.conversations):
        return True
    old_cid, new_cid = progress.conversations[progress.position]
    source = repository.messages_space(tenant_id, progress.source_id, old_cid)
    target = repository.messages_space(tenant_id, target_id, new_cid)
    begin = source.range()[0] if progress.after is None else bytes.fromhex(progress.after) + b"\x00"
    end = stamped.complete_key(source.raw_prefix, at)  # only messages committed before the fork
    copied = size = 0
    last: bytes | None = None
    # Snapshot reads: the range below the fork point never changes (append-only, lease-protected).
    for key, data in blobs.scan_values(tr, begin, end, limit=STEP_MESSAGES, snapshot=True):
        record = repository.MESSAGE_CODEC.decode(data)
        record.id = derived(new_cid, record.id)
        tail = key[len(source.raw_prefix) :]
        blobs.write_value(tr, target.raw_prefix + tail, repository.MESSAGE_CODEC.encode(record))
        tr.set(repository.msgid_key(tenant_id, target_id, new_cid, record.id), stamped.stamp_of(tail))
        copied, size, last = copied + 1, size + len(data), key
        if size >= STEP_BYTES:
            break
    if last is None or (copied < STEP_MESSAGES and size < STEP_BYTES):
        progress.position, progress.after = progress.position + 1, None
    else:
        progress.after = last.hex()
    blobs.write_value(
        tr, keyspace.session(tenant_id, target_id).key(repository.FORK), progress.model_dump_json().encode()
    )
    return False


def _publish(tr: Transaction, tenant_id: str, target_id: str) -> SessionRecord:
    record = access.load_session(tr, tenant_id, target_id)
    if record is not None and record.state == "live":
        return record  # published by an earlier attempt (commit_unknown_result)
    progress, _ = _progress(tr, tenant_id, target_id)
    pending = check_forking(tr, tenant_id, progress.source_id, target_id)
    assert pending.purge_due_us is not None
    live = pending.model_copy(update={"state": "live", "purge_due_us": None})
    repository.sessions(tenant_id).put(tr, (target_id, repository.REC), live, previous=pending)
    space = keyspace.session(tenant_id, target_id)
    blobs.clear_value(tr, space.key(repository.FORK))
    tr.clear(space.key(repository.FORK_AT))
    tr.clear(keyspace.session(tenant_id, progress.source_id).key(repository.FORKING, target_id))
    tr.clear(purge.queue_key(pending.purge_due_us, tenant_id, target_id))
    return live


def _fork_point(tr: Transaction, tenant_id: str, target_id: str) -> bytes:
    return _progress(tr, tenant_id, target_id)[1]


def fork(
    db: Database, ctx: TenantContext, source_id: str, name: str | None, *, purge_budget: float = 2.0
) -> SessionRecord:
    """Fork `source_id` (the caller's live session) into a new session; 404 when it is not one."""
    target_id = str(uuid.uuid4())
    due_us = int((time.time() + FORK_DEADLINE_SECONDS) * 1_000_000)
    db.transact(_begin, ctx, source_id, target_id, name, due_us)
    try:
        while not db.transact(_copy_step, ctx.tenant_id, target_id):
            pass
        at = db.transact(_fork_point, ctx.tenant_id, target_id)
        for hook in hooks.fork_hooks():
            hook(db, ctx.tenant_id, source_id, target_id, at)
        return db.transact(_publish, ctx.tenant_id, target_id)
    except BaseException:
        # Make the half-made copy purgeable now; whatever is left, `purge_pending` finishes.
        db.transact(purge.mark_deleting, ctx.tenant_id, target_id, int(time.time() * 1_000_000))
        purge.purge_session(db, ctx.tenant_id, target_id, deadline=time.monotonic() + purge_budget)
        raise
