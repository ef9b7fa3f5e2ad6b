"""`@event_handler`: dedupe, ack and retry for functions-framework `@cloud_event` handlers.

    @event_handler(db, function="provisioner")
    def handle(event: CloudEvent) -> None: ...   # at-least-once effects

Returning acks the event (functions-framework answers 200); raising makes functions-framework
answer 500, and Knative redelivers with backoff, then to the dead-letter sink. Every event is
logged in one JSON line: type, source, id, outcome (handled | duplicate | failed), latency.

Dedupe is on the event's `(source, id)` (keyspace.DEDUPE), which publishers keep stable across
their own retries. The handler runs outside any transaction (it may call Kubernetes, publish,
take minutes), and the mark is written only after it returns. A crash between its effects and
the mark, or two concurrent deliveries, run it twice: effects are at-least-once and must be
idempotent (create-if-absent, 409 = already done). The mark only saves repeated work.

Marks carry the time they were written; `prune_dedupe` (run by the cron gc job) drops those
older than the Broker's redelivery horizon.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from cloudevents.http import CloudEvent

from coditect.http import logs
from coditect.keyspace import DEDUPE, dedupe_key
from coditect.store import Database, Transaction

log = logging.getLogger("coditect.events")
EventFn = Callable[[CloudEvent], None]
DbSource = Database | Callable[[], Database]


def _db(source: DbSource) -> Database:
    return source if isinstance(source, Database) else source()


def _mark(event: CloudEvent) -> bytes:
    return json.dumps({"type": event["type"], "at": time.time()}).encode()


def event_handler(db: DbSource, *, function: str | None = None) -> Callable[[EventFn], EventFn]:
    """Wrap a CloudEvent handler with dedupe on `(source, id)`, one log line, ack/raise semantics.

    `db` is the store or a zero-argument callable returning it (opened lazily, at first event).
    `function` names the process in the logs (default: `K_SERVICE`, else the handler's module).
    """

    def decorate(handler: EventFn) -> EventFn:
        logs.configure(function or os.environ.get("K_SERVICE") or handler.__module__)

        @functools.wraps(handler)
        def run(event: CloudEvent) -> None:
            started = time.perf_counter()
            fields: dict[str, Any] = {"type": event["type"], "source": event["source"], "id": event["id"]}
            key = dedupe_key(str(event["source"]), str(event["id"]))
            try:
                outcome = _handle_then_mark(_db(db), handler, event, key)
            except Exception:
                fields.update(outcome="failed", latency_ms=_ms(started))
                log.exception("event", extra={"fields": fields})
                raise  # functions-framework answers 500: Knative redelivers
            fields.update(outcome=outcome, latency_ms=_ms(started))
            log.info("event", extra={"fields": fields})

        return run

    return decorate


def _handle_then_mark(db: Database, handler: EventFn, event: CloudEvent, key: bytes) -> str:
    if db.transact(lambda tr: tr.get(key)) is not None:
        return "duplicate"
    handler(event)
    db.transact(lambda tr: tr.set(key, _mark(event)))
    return "handled"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def prune_dedupe(db: Database, *, older_than: float, batch: int = 500, now: float | None = None) -> int:
    """Clear dedupe marks written more than `older_than` seconds ago; return how many.

    Scans the DEDUPE subspace in bounded transactions of `batch` keys (resumable: each
    transaction starts after the last key seen), so it stays within FoundationDB's limits.
    """
    cutoff = (time.time() if now is None else now) - older_than
    begin, end = DEDUPE.raw_prefix + b"\x00", DEDUPE.raw_prefix + b"\xff"
    cleared = 0

    def step(tr: Transaction, start: bytes) -> tuple[int, bytes | None]:
        rows = tr.get_range(start, end, limit=batch)
        n = 0
        for key, value in rows:
            try:
                at = float(json.loads(value)["at"])
            except (ValueError, KeyError, TypeError):
                at = 0.0  # an unreadable mark is worth nothing: drop it
            if at < cutoff:
                tr.clear(key)
                n += 1
        return n, (rows[-1][0] + b"\x00") if len(rows) == batch else None

    start: bytes | None = begin
    while start is not None:
        n, start = db.transact(step, start)
        cleared += n
    return cleared
