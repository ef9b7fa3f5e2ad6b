"""Store inspection and data builders shared by the sessions unit tests (and their subprocesses)."""

from __future__ import annotations

import uuid
from typing import Any

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.identity.context import TenantContext, mint
from coditect.sessions import conversations, messages, service
from coditect.sessions.models import ConversationCreate, MessageCreate, SessionCreate
from coditect.store import Database


def context_bypassing_auth(tenant_id: str | None = None, user_id: str | None = None) -> TenantContext:
    """A TenantContext minted directly, skipping the authentication middleware (unit tests only)."""
    return mint(
        tenant_id=tenant_id or str(uuid.uuid4()),
        user_id=user_id or str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        role="owner",
    )


def all_pairs(db: Database) -> list[tuple[bytes, bytes]]:
    def read(tr: Any) -> list[tuple[bytes, bytes]]:
        return list(tr.get_range(b"\x00", b"\xff"))

    return db.transact(read)


def keys_under(db: Database, space: keyspace.Subspace) -> int:
    return db.transact(lambda tr: len(tr.get_range(*space.range())))


def mentions(db: Database, session_id: str) -> list[bytes]:
    """Every key whose tuple, or value, names `session_id` anywhere (any subspace)."""
    found = []
    needle = session_id.encode()
    for key, value in all_pairs(db):
        try:
            parts = fdbtuple.unpack(key)
        except Exception:
            parts = ()
        if session_id in [p for p in parts if isinstance(p, str)] or needle in key or needle in value:
            found.append(key)
    return found


def make_session(db: Database, ctx: TenantContext, name: str = "s") -> str:
    return service.create(db, ctx, SessionCreate(name=name)).id


def make_conversation(db: Database, ctx: TenantContext, session_id: str, title: str = "c") -> str:
    return conversations.create(db, ctx, session_id, ConversationCreate(title=title)).id


def append(db: Database, ctx: TenantContext, conversation_id: str, content: str, role: str = "user") -> int:
    return messages.append(db, ctx, conversation_id, MessageCreate(role=role, content=content)).seq  # type: ignore[arg-type]


def all_messages(db: Database, ctx: TenantContext, conversation_id: str, limit: int = 200) -> list[Any]:
    out, cursor = [], None
    while True:
        page, cursor = messages.page(db, ctx, conversation_id, limit=limit, cursor=cursor)
        out.extend(page)
        if cursor is None:
            return out
