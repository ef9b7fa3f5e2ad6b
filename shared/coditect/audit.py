"""The append-only audit log of a tenant: security events, listed newest first.

    record(tr, tenant_id, type="login", actor_id=uid, session_id=sid, request_id=rid,
           ip=call.client_ip, outcome="success", reason=None)

Events live under `tenant(tid).sub(AUDIT)` with a versionstamped key, so they sort in commit
order across every function and replica without trusting anyone's clock for ordering, and no
two writers ever conflict. Nothing in this module updates or deletes an event.

Never put a secret in an event: `session_id` is a login session's id (never a token), `reason`
is a stable code. `record` joins the caller's transaction, so an event commits exactly when the
change it describes does. A transaction body that runs twice (`commit_unknown_result`) can write
an event twice; both copies carry the same `id` when the caller generated it outside the retry
loop (pass `event_id`), and `list_events` drops the repeat.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from coditect import keyspace
from coditect.repo.codec import RecordCodec
from coditect.repo.cursor import paginate
from coditect.store import Transaction
from coditect.store.versionstamp import pack_versionstamped

Outcome = Literal["success", "failure"]


class AuditEvent(BaseModel):
    """One event as stored and as answered by `GET /api/v5/audit`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    time: datetime
    tenant_id: str
    actor_id: str | None = None  # the user who acted (or tried to)
    target_id: str | None = None  # the user, session or invite acted on, when not the actor
    session_id: str | None = None  # the actor's login session id (never a token)
    request_id: str | None = None
    ip: str | None = None
    outcome: Outcome
    reason: str | None = None  # a stable code: invalid_credentials, refresh_token_reused, ...


CODEC = RecordCodec(AuditEvent, 1)


def _subspace(tenant_id: str) -> keyspace.Subspace:
    return keyspace.tenant(tenant_id).sub(keyspace.AUDIT)


def record(
    tr: Transaction,
    tenant_id: str,
    *,
    type: str,
    actor_id: str | None,
    session_id: str | None,
    request_id: str | None,
    ip: str | None,
    outcome: Outcome,
    reason: str | None = None,
    target_id: str | None = None,
    event_id: str | None = None,
    at: float | None = None,
) -> AuditEvent:
    """Append one event to `tenant_id`'s log in the caller's transaction; returns it."""
    event = AuditEvent(
        id=event_id or str(uuid.uuid4()),
        type=type,
        time=datetime.fromtimestamp(time.time() if at is None else at, UTC),
        tenant_id=tenant_id,
        actor_id=actor_id,
        target_id=target_id,
        session_id=session_id,
        request_id=request_id,
        ip=ip,
        outcome=outcome,
        reason=reason,
    )
    # Events of one transaction share a versionstamp; the event id after it keeps them apart.
    key = pack_versionstamped(_subspace(tenant_id).prefix, 0, (event.id,))
    tr.set_versionstamped_key(key, CODEC.encode(event))
    return event


def list_events(
    tr: Transaction, tenant_id: str, *, limit: int, cursor: str | None
) -> tuple[list[AuditEvent], str | None]:
    """One page of `tenant_id`'s events, newest first, and the next page's cursor."""
    sub = _subspace(tenant_id)
    begin, end = sub.raw_prefix + b"\x00", sub.raw_prefix + b"\xff"
    kvs, next_cursor = paginate(
        tr, begin, end, limit=limit, cursor=cursor, query=f"audit:{tenant_id}", reverse=True, snapshot=True
    )
    events: list[AuditEvent] = []
    seen: set[str] = set()
    for _, value in kvs:
        event = CODEC.decode(value)
        if event.id not in seen:  # a retried commit may have written it twice
            seen.add(event.id)
            events.append(event)
    return events, next_cursor
