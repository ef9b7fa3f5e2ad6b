"""Conversations of a session: list (creation order), create, read, rename, delete.

A conversation lives at `session(tid, sid).key("conv", cid)` (UUIDv7 ids, so key order is
creation order) with the tenant-wide unique index `conv_ix` (cid → where it lives) that the
`/conversations/{id}` routes resolve; `message_count` is the atomic counter `("count", cid)`.
"""

from __future__ import annotations

from coditect import idempotency, keyspace
from coditect.errors import Conflict, NotFound
from coditect.identity.context import TenantContext
from coditect.repo import counters
from coditect.sessions import access, fork, repository
from coditect.sessions.ids import uuid7
from coditect.sessions.models import (
    CONVERSATIONS_MAX,
    Conversation,
    ConversationCreate,
    ConversationPatch,
    ConversationRecord,
    PageQuery,
    now,
)
from coditect.store import Database, Transaction


def _out(tr: Transaction, tenant_id: str, record: ConversationRecord) -> Conversation:
    count = counters.read(tr, repository.count_key(tenant_id, record.session_id, record.id), snapshot=True)
    return Conversation(message_count=count, **record.model_dump())


def page(
    db: Database, ctx: TenantContext, session_id: str, query: PageQuery
) -> tuple[list[Conversation], str | None]:
    def read(tr: Transaction) -> tuple[list[Conversation], str | None]:
        access.require_session(tr, ctx, session_id)
        rows, next_cursor = repository.conversations(ctx.tenant_id).page(
            tr,
            session_id,
            repository.CONV,
            limit=query.limit,
            cursor=query.cursor,
            query=f"conversations:{session_id}",
            snapshot=True,
        )
        return [_out(tr, ctx.tenant_id, r) for _, r in rows], next_cursor

    return db.transact(read)


def create(
    db: Database,
    ctx: TenantContext,
    session_id: str,
    body: ConversationCreate,
    idempotency_key: str | None = None,
) -> Conversation:
    """A new conversation; with an `Idempotency-Key` a repeat answers the one the first made."""
    at = now()
    record = ConversationRecord(
        id=uuid7(), session_id=session_id, title=body.title, agent=body.agent, created_at=at, updated_at=at
    )
    claim = idempotency.claim(
        idempotency_key, user_id=ctx.user_id, operation="conversations.create", scope=session_id, body=body
    )
    space = keyspace.session(ctx.tenant_id, session_id).sub(idempotency.SESSION_PART)

    def write(tr: Transaction) -> Conversation:
        access.require_session(tr, ctx, session_id)
        table = repository.conversations(ctx.tenant_id)
        earlier = idempotency.created(tr, space, claim)
        if earlier is not None:
            existing = table.get(tr, session_id, repository.CONV, earlier)
            if existing is not None:
                return _out(tr, ctx.tenant_id, existing)
        if table.get(tr, session_id, repository.CONV, record.id) is not None:
            return _out(tr, ctx.tenant_id, record)  # written by an earlier attempt
        count_key = keyspace.session(ctx.tenant_id, session_id).key(repository.NCONV)
        if counters.read(tr, count_key) >= CONVERSATIONS_MAX:
            raise Conflict(f"A session holds at most {CONVERSATIONS_MAX} conversations.")
        table.put(tr, (session_id, repository.CONV, record.id), record, previous=None)
        counters.add(tr, count_key, 1)
        idempotency.remember(tr, space, claim, record.id)
        return Conversation(message_count=0, **record.model_dump())

    return db.transact(write)


def get(db: Database, ctx: TenantContext, conversation_id: str) -> Conversation:
    def read(tr: Transaction) -> Conversation:
        _, record = access.require_conversation(tr, ctx, conversation_id)
        return _out(tr, ctx.tenant_id, record)

    return db.transact(read)


def update(db: Database, ctx: TenantContext, conversation_id: str, body: ConversationPatch) -> Conversation:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    at = now()

    def write(tr: Transaction) -> Conversation:
        session, current = access.require_conversation(tr, ctx, conversation_id)
        if all(getattr(current, k) == v for k, v in changes.items()) or current.updated_at == at:
            return _out(tr, ctx.tenant_id, current)
        record = current.model_copy(update={**changes, "updated_at": at})
        repository.conversations(ctx.tenant_id).put(
            tr, (session.id, repository.CONV, conversation_id), record, previous=current
        )
        return _out(tr, ctx.tenant_id, record)

    return db.transact(write)


def delete(db: Database, ctx: TenantContext, conversation_id: str) -> None:
    """Remove the conversation and all its messages in one transaction (its messages are one
    key range: a single range clear). Refused (409) while the session is being forked."""

    issued = False  # an earlier attempt of this request issued the delete

    def write(tr: Transaction) -> None:
        nonlocal issued
        try:
            session, record = access.require_conversation(tr, ctx, conversation_id)
        except NotFound:
            if issued:  # our own commit, retried after commit_unknown_result: already gone
                return
            raise
        if fork.forks_in_progress(tr, ctx.tenant_id, session.id):
            raise Conflict("The session is being forked; retry in a moment.", code="fork_in_progress")
        tid = ctx.tenant_id
        repository.conversations(tid).delete(tr, (session.id, repository.CONV, conversation_id), record)
        space = keyspace.session(tid, session.id)
        tr.clear_range(*space.range(repository.MSG, conversation_id))
        tr.clear_range(*space.range(repository.MSGID, conversation_id))
        tr.clear(repository.count_key(tid, session.id, conversation_id))
        counters.add(tr, space.key(repository.NCONV), -1)
        issued = True

    db.transact(write)
