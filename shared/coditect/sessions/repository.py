"""The tables of this area and the layout of a session's subspace (keys named in `coditect.keyspace`).

    session(tid, sid) = ("t", tid, "s", sid)
      ("rec",)                      session record (blob)            ← repository.sessions, pk (sid, "rec")
      ("conv", cid)                 conversation record              ← repository.conversations
      ("nconv",)                    number of conversations (8-byte LE; ≤ CONVERSATIONS_MAX)
      ("count", cid)                message count (8-byte LE, atomic ADD)
      ("msg", cid, Versionstamp)    message (blob; chunks at (…, i)) ← coditect.sessions.messages
      ("msgid", cid, message_id)    commit versionstamp of that message (idempotent appends)
      ("fork",)                     staged-fork progress while this session is a pending fork
      ("fork_at",)                  the fork point: versionstamp of the fork's first transaction
      ("forking", target_sid)       fork lease on a source: deadline (µs) of a fork in progress
      ("files", ...), ("ws", ...)   the files and workspaces areas

Index entries of a session exist only while it is `live` (the index functions return None
otherwise), so marking it deleted or pending removes it from every listing in that transaction.
"""

from __future__ import annotations

import functools

from coditect import keyspace
from coditect.keyspace import Subspace
from coditect.repo import Index, RecordCodec, Table
from coditect.sessions.models import (
    ConversationRecord,
    MessageRecord,
    SessionRecord,
    SettingRecord,
    micros,
)

REC, CONV, NCONV, COUNT, MSG, MSGID = "rec", "conv", "nconv", "count", "msg", "msgid"
FORK, FORK_AT, FORKING = "fork", "fork_at", "forking"

SESSION_CODEC = RecordCodec(SessionRecord, 1)
CONVERSATION_CODEC = RecordCodec(ConversationRecord, 1)
SETTING_CODEC = RecordCodec(SettingRecord, 1)
MESSAGE_CODEC = RecordCodec(MessageRecord, 1)


def _by_owner(r: SessionRecord) -> tuple[object, ...] | None:
    return (r.owner_id, micros(r.updated_at)) if r.state == "live" else None


def _by_owner_archived(r: SessionRecord) -> tuple[object, ...] | None:
    return (r.owner_id, r.archived, micros(r.updated_at)) if r.state == "live" else None


def _by_parent(r: SessionRecord) -> tuple[object, ...] | None:
    return (r.parent_id, micros(r.created_at)) if r.state == "live" and r.parent_id else None


@functools.lru_cache(maxsize=1024)  # a Table is immutable; building one costs 4 subspaces per request
def sessions(tid: str) -> Table[SessionRecord]:
    """Session records at `session(tid, sid).key("rec")`, i.e. pk `(sid, "rec")`."""
    t = keyspace.tenant(tid)
    return Table(
        t.sub(keyspace.SESSIONS),
        SESSION_CODEC,
        indexes=[
            Index("owner", t.sub(keyspace.SESSIONS_BY_OWNER), _by_owner),
            Index("owner_archived", t.sub(keyspace.SESSIONS_BY_OWNER_ARCHIVED), _by_owner_archived),
            Index("parent", t.sub(keyspace.SESSIONS_BY_PARENT), _by_parent),
        ],
    )


def conversations(tid: str) -> Table[ConversationRecord]:
    """Conversation records at `session(tid, sid).key("conv", cid)`, pk `(sid, "conv", cid)`,
    with the unique index `conv_ix` (cid → pk) that the /conversations/{id} routes resolve."""
    t = keyspace.tenant(tid)
    return Table(
        t.sub(keyspace.SESSIONS),
        CONVERSATION_CODEC,
        indexes=[Index("id", t.sub(keyspace.CONVERSATION_INDEX), lambda c: (c.id,), unique=True)],
    )


def settings(tid: str) -> Table[SettingRecord]:
    """Setting records at `("t", tid, "settings", user_id, key)`."""
    return Table(keyspace.tenant(tid).sub(keyspace.SETTINGS), SETTING_CODEC)


def count_key(tid: str, sid: str, cid: str) -> bytes:
    return keyspace.session(tid, sid).key(COUNT, cid)


def messages_space(tid: str, sid: str, cid: str) -> Subspace:
    return keyspace.session(tid, sid).sub(MSG, cid)


def msgid_key(tid: str, sid: str, cid: str, message_id: str) -> bytes:
    return keyspace.session(tid, sid).key(MSGID, cid, message_id)
