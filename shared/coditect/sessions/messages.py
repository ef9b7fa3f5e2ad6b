"""Messages: appended in commit order, listed by range reads from the cursor.

Key: `session(tid, sid).key("msg", cid, Versionstamp)`, written with SET_VERSIONSTAMPED_KEY, so
the key is assigned by the commit itself. Appends therefore never write the same key, never
read anything another append writes (the message count is an atomic ADD), and never conflict
with each other, from any number of processes; the key order IS the commit order.

`seq` = the 10-byte commit versionstamp read as a big-endian integer (8-byte commit version,
2-byte batch order). It is unique and strictly increasing in commit order because one
transaction appends exactly one message per conversation, and every later commit has a larger
versionstamp. It is not dense (gaps are normal) and it is large: on the embedded store it is
commit_number * 65536 (< 2^53 for the first 2^37 commits); on FoundationDB (about 10^6 versions a
second) it passes 2^53 after about 38 hours of cluster life, so JavaScript clients must parse it
as BigInt (or order by list position) — a deliberate trade for conflict-free appends.

An append may run twice (commit_unknown_result): the message id is chosen before the retry loop
and `("msgid", cid, id)` records the versionstamp it committed at (SET_VERSIONSTAMPED_VALUE), so
the second run finds it and answers the same message instead of writing a duplicate.
"""

from __future__ import annotations

from coditect import idempotency, keyspace
from coditect.errors import PayloadTooLarge
from coditect.identity.context import TenantContext
from coditect.repo import blobs, counters
from coditect.repo.cursor import paginate
from coditect.sessions import access, repository, stamped
from coditect.sessions.ids import uuid7
from coditect.sessions.models import CONTENT_MAX_BYTES, Message, MessageCreate, MessageRecord, now
from coditect.store import Database, Transaction


def seq_of(stamp: bytes) -> int:
    return int.from_bytes(stamp, "big")


def _message(conversation_id: str, stamp: bytes, record: MessageRecord) -> Message:
    return Message(conversation_id=conversation_id, seq=seq_of(stamp), **record.model_dump())


def append(
    db: Database,
    ctx: TenantContext,
    conversation_id: str,
    body: MessageCreate,
    idempotency_key: str | None = None,
) -> Message:
    """Append a message; with an `Idempotency-Key` a repeat answers the message the first made."""
    if len(body.content.encode()) > CONTENT_MAX_BYTES:
        raise PayloadTooLarge(
            f"Message content is limited to {CONTENT_MAX_BYTES} bytes.", code="content_too_large"
        )
    record = MessageRecord(
        id=uuid7(), role=body.role, content=body.content, metadata=body.metadata, created_at=now()
    )
    data = repository.MESSAGE_CODEC.encode(record)
    attempts: list[Transaction] = []
    claim = idempotency.claim(
        idempotency_key, user_id=ctx.user_id, operation="messages.append", scope=conversation_id, body=body
    )

    def write(tr: Transaction) -> Message | bytes | None:
        attempts.append(tr)
        session, _ = access.require_conversation(tr, ctx, conversation_id)
        records = keyspace.session(ctx.tenant_id, session.id).sub(idempotency.SESSION_PART)
        earlier = idempotency.created(tr, records, claim)
        if earlier is not None:
            replay = _stored(tr, ctx.tenant_id, session.id, conversation_id, earlier)
            if replay is not None:
                return replay
        marker = repository.msgid_key(ctx.tenant_id, session.id, conversation_id, record.id)
        already = tr.get(marker)
        if already is not None:  # this append committed in an earlier attempt
            return already
        space = repository.messages_space(ctx.tenant_id, session.id, conversation_id)
        stamped.write(tr, space.prefix, data)
        tr.set_versionstamped_value(marker, stamped.VALUE_PLACEHOLDER)
        counters.add(tr, repository.count_key(ctx.tenant_id, session.id, conversation_id), 1)
        idempotency.remember(tr, records, claim, record.id)
        return None

    result = db.transact(write)
    if isinstance(result, Message):
        return result
    return _message(conversation_id, result or attempts[-1].get_versionstamp(), record)


def _stored(tr: Transaction, tid: str, sid: str, cid: str, message_id: str) -> Message | None:
    """The committed message `message_id` of the conversation (None when it is gone)."""
    stamp = tr.get(repository.msgid_key(tid, sid, cid, message_id))
    if stamp is None:
        return None
    key = stamped.complete_key(repository.messages_space(tid, sid, cid).raw_prefix, stamp)
    data = blobs.read_value(tr, key)
    return None if data is None else _message(cid, stamp, repository.MESSAGE_CODEC.decode(data))


def page(
    db: Database, ctx: TenantContext, conversation_id: str, *, limit: int, cursor: str | None
) -> tuple[list[Message], str | None]:
    """Messages in commit order; each page is one range read starting after the cursor's key."""

    def read(tr: Transaction) -> tuple[list[Message], str | None]:
        session, _ = access.require_conversation(tr, ctx, conversation_id)
        space = repository.messages_space(ctx.tenant_id, session.id, conversation_id)
        begin, end = space.range()
        query = f"messages:{conversation_id}"
        rows, next_cursor = paginate(
            tr, begin, end, limit=limit, cursor=cursor, query=query, snapshot=True, blob_records=True
        )
        items = [
            _message(
                conversation_id,
                stamped.stamp_of(key[len(space.raw_prefix) :]),
                repository.MESSAGE_CODEC.decode(value),
            )
            for key, value in rows
        ]
        return items, next_cursor

    return db.transact(read)
