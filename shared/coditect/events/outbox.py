"""The transactional outbox: record an event in the transaction that causes it, publish after.

Publishing from inside a transaction body is wrong twice over: the body may run again (the event
goes out twice, or for a transaction that finally failed), and an HTTP call holds the transaction
open. Instead the event is written under keyspace.OUTBOX in the same transaction as the state change,
so it exists if and only if the change committed, and is published after the commit:

    event = OutboxEvent.new(event_types.WORKSPACE_REQUESTED, "/workspaces", {...}, subject=ws_id)
    db.transact(allocate, ctx, ws_id, event)      # allocate calls record_outbox(tr, event)
    flush_outbox(db, publisher, event)            # fast path, right after the commit

and whatever a crash left behind is published by `drain_outbox` (the cron job, and the next
flush). Build the event OUTSIDE the transaction (its id and time are generated once), so a
retried body writes the same key again. Delivery is at-least-once (a publish that timed out may
have been accepted; two drainers may race) and consumers dedupe on `(source, id)`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from coditect.events.publisher import Publisher, PublishError, make_event
from coditect.keyspace import OUTBOX
from coditect.store import Database, Transaction

log = logging.getLogger("coditect.events")


@dataclass(frozen=True)
class OutboxEvent:
    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time_ns: int = field(default_factory=time.time_ns)

    @classmethod
    def new(cls, type: str, source: str, data: dict[str, Any], *, subject: str | None = None) -> OutboxEvent:
        """A new event with a fresh id and time: call it outside the transaction."""
        return cls(type, source, data, subject)

    @property
    def key(self) -> bytes:
        return OUTBOX.key(self.time_ns, self.id)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> OutboxEvent:
        return cls(**json.loads(raw))


def record_outbox(tr: Transaction, event: OutboxEvent) -> None:
    """Write `event` to the outbox in the caller's transaction (idempotent for a retried body)."""
    tr.set(event.key, event.encode())


def _send(publisher: Publisher, event: OutboxEvent) -> None:
    publisher.send(make_event(event.type, event.source, event.data, subject=event.subject, event_id=event.id))


def flush_outbox(db: Database, publisher: Publisher, event: OutboxEvent) -> bool:
    """Publish one recorded event and remove it; False (logged, left for the drain) on failure."""
    try:
        _send(publisher, event)
    except PublishError as exc:
        log.warning(
            "outbox publish deferred",
            extra={"fields": {"id": event.id, "type": event.type, "error": str(exc)}},
        )
        return False
    db.transact(lambda tr: tr.clear(event.key))
    return True


def drain_outbox(db: Database, publisher: Publisher, *, limit: int = 100, min_age: float = 0.0) -> int:
    """Publish up to `limit` recorded events, oldest first, removing each once sent; return how many.

    Stops at the first failure (the sink is likely down; the rest wait for the next run).
    `min_age` (seconds) leaves alone events so young that their own request is still flushing.
    """
    cutoff = time.time_ns() - int(min_age * 1e9)
    begin, end = OUTBOX.range()
    rows = db.transact(lambda tr: tr.snapshot.get_range(begin, end, limit=limit))
    sent = 0
    for _, value in rows:
        event = OutboxEvent.decode(value)
        if event.time_ns > cutoff:
            break
        if not flush_outbox(db, publisher, event):
            break
        sent += 1
    return sent
