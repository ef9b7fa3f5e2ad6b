"""Workspace sessions: create, read, update (If-Match), list by recency, delete (mark + purge)."""

from __future__ import annotations

import time
import uuid

from coditect import idempotency, keyspace
from coditect.errors import PreconditionFailed
from coditect.identity.context import TenantContext
from coditect.repo.cursor import paginate
from coditect.sessions import access, purge, repository
from coditect.sessions.models import SessionCreate, SessionListQuery, SessionPatch, SessionRecord, now
from coditect.store import Database, Transaction


def create(
    db: Database, ctx: TenantContext, body: SessionCreate, idempotency_key: str | None = None
) -> SessionRecord:
    """A new session; with an `Idempotency-Key` a repeat answers the session the first made."""
    at = now()
    record = SessionRecord(
        id=str(uuid.uuid4()),
        owner_id=ctx.user_id,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        created_at=at,
        updated_at=at,
    )

    claim = idempotency.claim(
        idempotency_key, user_id=ctx.user_id, operation="sessions.create", scope="", body=body
    )
    space = keyspace.tenant(ctx.tenant_id).sub(keyspace.IDEMPOTENCY)

    def write(tr: Transaction) -> SessionRecord:
        earlier = idempotency.created(tr, space, claim)
        if earlier is not None:
            existing = repository.sessions(ctx.tenant_id).get(tr, earlier, repository.REC)
            if existing is not None:
                return existing
        repository.sessions(ctx.tenant_id).put(tr, (record.id, repository.REC), record)
        idempotency.remember(tr, space, claim, record.id)
        return record

    return db.transact(write)


def get(db: Database, ctx: TenantContext, session_id: str) -> SessionRecord:
    return db.transact(access.require_session, ctx, session_id)


def matches(if_match: str | None, record: SessionRecord) -> bool:
    """RFC 9110 If-Match: `*` or a list of strong entity tags (weak tags never match)."""
    if if_match is None:
        return True
    tags = [t.strip() for t in if_match.split(",")]
    return "*" in tags or record.etag in tags


def update(
    db: Database, ctx: TenantContext, session_id: str, body: SessionPatch, if_match: str | None
) -> SessionRecord:
    """Apply the fields present in `body`; 412 (nothing written) when If-Match does not hold."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    at = now()  # chosen outside the retry loop: a rerun after commit_unknown_result recognises it

    def write(tr: Transaction) -> SessionRecord:
        current = access.require_session(tr, ctx, session_id)
        if current.updated_at == at:  # this update already committed (commit_unknown_result)
            return current
        if not matches(if_match, current):
            raise PreconditionFailed("The session changed since that ETag.")
        if all(getattr(current, k) == v for k, v in changes.items()):
            return current
        record = current.model_copy(update={**changes, "updated_at": at, "version": current.version + 1})
        repository.sessions(ctx.tenant_id).put(tr, (session_id, repository.REC), record, previous=current)
        return record

    return db.transact(write)


def page(db: Database, ctx: TenantContext, query: SessionListQuery) -> tuple[list[SessionRecord], str | None]:
    """The caller's live sessions, most recently updated first (a reverse range read of the
    owner index from the cursor); `archived`: "false" (default), "true" or "all"."""
    table = repository.sessions(ctx.tenant_id)
    prefix: tuple[object, ...]
    if query.archived == "all":
        space, prefix = table.indexes["owner"].subspace, (ctx.user_id,)
    else:
        space, prefix = table.indexes["owner_archived"].subspace, (ctx.user_id, query.archived == "true")
    begin, end = space.range(*prefix)
    name = f"sessions:{ctx.user_id}:{query.archived}"

    def read(tr: Transaction) -> tuple[list[SessionRecord], str | None]:
        kvs, next_cursor = paginate(
            tr, begin, end, limit=query.limit, cursor=query.cursor, query=name, reverse=True, snapshot=True
        )
        records = []
        for key, _ in kvs:
            sid = space.unpack(key)[-2]
            record = table.get(tr, sid, repository.REC, snapshot=True)
            if record is not None and record.state == "live":
                records.append(record)
        return records, next_cursor

    return db.transact(read)


def delete(db: Database, ctx: TenantContext, session_id: str, *, budget_seconds: float) -> bool:
    """Mark the session deleted (gone from every read at once), then purge it for up to
    `budget_seconds`; True when nothing is left, else the ops `gc` job finishes it."""
    due = int(time.time() * 1_000_000)

    def mark(tr: Transaction) -> None:
        record = access.load_session(tr, ctx.tenant_id, session_id)
        if record is not None and record.state == "deleting" and record.purge_due_us == due:
            return  # marked by an earlier attempt of this request (commit_unknown_result)
        access.require_session(tr, ctx, session_id)
        purge.mark_deleting(tr, ctx.tenant_id, session_id, due)

    db.transact(mark)
    return purge.purge_session(db, ctx.tenant_id, session_id, deadline=time.monotonic() + budget_seconds)
