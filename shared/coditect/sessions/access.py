"""The liveness and ownership gate every read and write of session-scoped data passes through.

Other areas call `require_session(tr, ctx, sid)` in the SAME transaction as their work on
`keyspace.session(ctx.tenant_id, sid)`: it answers 404 for a missing session, another user's or
another tenant's (the tenant comes only from `ctx`), and one that is pending (a fork being
copied) or being deleted. Because the record is read with a read conflict, a concurrent DELETE
makes that transaction retry and then fail with 404, so nothing is ever written into a session
after it was marked deleted.
"""

from __future__ import annotations

from coditect.errors import NotFound
from coditect.identity.context import TenantContext
from coditect.sessions import repository
from coditect.sessions.models import ConversationRecord, SessionRecord
from coditect.store import Transaction


def load_session(tr: Transaction, tenant_id: str, session_id: str) -> SessionRecord | None:
    """The record in any state (None when absent); for internal machinery, not for requests."""
    return repository.sessions(tenant_id).get(tr, session_id, repository.REC)


def require_session(tr: Transaction, ctx: TenantContext, session_id: str) -> SessionRecord:
    """The caller's live session, or NotFound."""
    record = load_session(tr, ctx.tenant_id, session_id)
    if record is None or record.state != "live" or record.owner_id != ctx.user_id:
        raise NotFound()
    return record


def require_conversation(
    tr: Transaction, ctx: TenantContext, conversation_id: str
) -> tuple[SessionRecord, ConversationRecord]:
    """The caller's conversation and its (live) session, or NotFound."""
    table = repository.conversations(ctx.tenant_id)
    pk = table.lookup(tr, "id", conversation_id)
    if pk is None:
        raise NotFound()
    session = require_session(tr, ctx, pk[0])
    conversation = table.get(tr, *pk)
    if conversation is None:
        raise NotFound()
    return session, conversation
