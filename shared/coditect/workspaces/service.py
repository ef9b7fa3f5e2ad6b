"""What the `workspaces` and `workspace-allocate` functions do: allocate, list, get, stop.

Decisions (documented in the OpenAPI summaries too):

- One active workspace per session: allocating for a session whose workspace is `requested`,
  `provisioning` or `ready` answers 202 with THAT workspace (no new record, no new event). A
  session whose workspace is `stopping` gets a new one.
- `Idempotency-Key` (1 to 200 visible ASCII characters, scoped to the caller): a retry with the
  same key and the same body answers 202 with the same workspace (even after it stopped); the
  same key with a different body answers 422 `idempotency_key_reused` (the IETF
  idempotency-key draft's choice). Keys are kept with the workspace record.
- Limits: active workspaces per user and per tenant (409 `workspace_limit_reached`), and
  allocations per user per minute (429 `rate_limited` with Retry-After, coditect.ratelimit;
  idempotent replays and "already active" answers are not counted).
- DELETE of an active workspace → `stopping` (reason `stopped_by_user`) + a `stop_requested`
  event; of a `stopping`, `stopped` or `failed` one → 202 with it unchanged (nothing to stop).
- Events are recorded in the outbox in the transaction that changes the record and flushed to
  `K_SINK` right after the commit; what a failed flush leaves is published by the reconcile job.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from coditect import event_types, ratelimit
from coditect.config import Settings
from coditect.errors import Conflict, NotFound, RateLimited, ValidationFailed
from coditect.events import OutboxEvent, SinkNotConfigured, default_publisher, flush_outbox, record_outbox
from coditect.identity.context import TenantContext
from coditect.repo import paginate
from coditect.sessions.access import require_session
from coditect.store import Database, Transaction
from coditect.workspaces import lifecycle, repository
from coditect.workspaces.models import ACTIVE, Transition, WorkspaceRecord

log = logging.getLogger("coditect.workspaces")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def allocation_policy(settings: Settings) -> ratelimit.Policy:
    per_minute = settings.workspace_allocate_per_minute
    return ratelimit.Policy("workspace_allocate", per_minute, 60.0, backoff=60.0, backoff_cap=60.0)


def _request_digest(session_id: str) -> str:
    return hashlib.sha256(f"session_id={session_id}".encode()).hexdigest()


def event_for(kind: str, record: WorkspaceRecord) -> OutboxEvent:
    data = {"workspace_id": record.id, "tenant_id": record.tenant_id}
    return OutboxEvent.new(kind, lifecycle.SOURCE, data, subject=record.id)


def publish_after_commit(db: Database, events: list[OutboxEvent]) -> None:
    """Flush recorded events now; anything that fails stays in the outbox for the drain."""
    for event in events:
        try:
            flush_outbox(db, default_publisher(), event)
        except SinkNotConfigured:
            log.warning("workspaces: K_SINK unset; %s %s left in the outbox", event.type, event.id)
            return


def allocate(
    db: Database,
    ctx: TenantContext,
    session_id: str,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
    now: float | None = None,
) -> WorkspaceRecord:
    """Allocate (or find) the caller's workspace for `session_id`; see the module docstring."""
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ValidationFailed(
            details=[{"loc": ["header", "Idempotency-Key"], "type": "string_pattern_mismatch"}]
        )
    at = time.time() if now is None else now
    digest = _request_digest(session_id)
    if idempotency_key is not None:
        replay = db.transact(_replay, ctx, idempotency_key, digest)
        if replay is not None:
            return replay
    policy, subject = allocation_policy(settings), f"{ctx.tenant_id}/{ctx.user_id}"
    decision = db.transact(ratelimit.hit, policy, subject, at)
    if not decision.allowed:
        raise RateLimited(decision.retry_after)
    # Ids, times and the event are made once, outside the retry loop.
    stamp = datetime.fromtimestamp(at, UTC)
    record = WorkspaceRecord(
        id=str(uuid.uuid4()),
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        session_id=session_id,
        status="requested",
        created_at=stamp,
        updated_at=stamp,
        history=[Transition(status="requested", at=stamp)],
        idempotency_key=idempotency_key,
        request_digest=digest,
    )
    event = event_for(event_types.WORKSPACE_REQUESTED, record)
    result, created = db.transact(_allocate, ctx, record, event, settings, (policy, subject))
    if created:
        publish_after_commit(db, [event])
    return result


def _replay(tr: Transaction, ctx: TenantContext, key: str, digest: str) -> WorkspaceRecord | None:
    existing = repository.by_idempotency_key(tr, ctx.tenant_id, ctx.user_id, key)
    if existing is None:
        return None
    if existing.request_digest != digest:
        raise ValidationFailed(
            "This Idempotency-Key was used with a different request.", code="idempotency_key_reused"
        )
    return existing


def _allocate(
    tr: Transaction,
    ctx: TenantContext,
    record: WorkspaceRecord,
    event: OutboxEvent,
    settings: Settings,
    counted: tuple[ratelimit.Policy, str],
) -> tuple[WorkspaceRecord, bool]:
    require_session(tr, ctx, record.session_id)  # 404 for a missing, foreign or deleted session
    existing = None
    if record.idempotency_key is not None:  # a concurrent request with the same key got there first
        existing = _replay(tr, ctx, record.idempotency_key, record.request_digest or "")
    existing = existing or repository.active_for_session(tr, ctx.tenant_id, record.session_id)
    if existing is not None:
        ratelimit.forgive(tr, *counted)  # nothing allocated: the attempt does not count
        return existing, False
    if repository.count_active(tr, ctx.tenant_id, ctx.user_id, stop_at=settings.workspace_max_per_user) >= (
        settings.workspace_max_per_user
    ):
        raise Conflict(
            f"You already have {settings.workspace_max_per_user} active workspaces; stop one first.",
            code="workspace_limit_reached",
        )
    if repository.count_active(tr, ctx.tenant_id, None, stop_at=settings.workspace_max_per_tenant) >= (
        settings.workspace_max_per_tenant
    ):
        raise Conflict("Your organisation has reached its workspace limit.", code="workspace_limit_reached")
    repository.save(tr, record, None)
    record_outbox(tr, event)
    return record, True


def get(db: Database, ctx: TenantContext, workspace_id: str) -> WorkspaceRecord:
    """The caller's workspace, or 404 (also for another user's or tenant's)."""
    return db.transact(_own, ctx, workspace_id)


def _own(tr: Transaction, ctx: TenantContext, workspace_id: str) -> WorkspaceRecord:
    record = repository.get(tr, ctx.tenant_id, workspace_id)
    if record is None or record.user_id != ctx.user_id:
        raise NotFound()
    return record


def list_page(
    db: Database, ctx: TenantContext, *, limit: int, cursor: str | None
) -> tuple[list[WorkspaceRecord], str | None]:
    """The caller's workspaces, newest first, one page."""
    begin, end = repository.user_index_range(ctx.tenant_id, ctx.user_id)

    def read(tr: Transaction) -> tuple[list[WorkspaceRecord], str | None]:
        rows, next_cursor = paginate(
            tr, begin, end, limit=limit, cursor=cursor, query="workspaces.list", reverse=True, snapshot=True
        )
        records = []
        for key, _ in rows:
            record = repository.get(
                tr, ctx.tenant_id, repository.workspace_id_from_user_index(ctx.tenant_id, key)
            )
            if record is not None:
                records.append(record)
        return records, next_cursor

    return db.transact(read)


def stop(db: Database, ctx: TenantContext, workspace_id: str, *, now: float | None = None) -> WorkspaceRecord:
    """Ask for the caller's workspace to stop (see the module docstring)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    record = get(db, ctx, workspace_id)
    event = event_for(event_types.WORKSPACE_STOP_REQUESTED, record)
    result, changed = db.transact(_stop, ctx, workspace_id, event, stamp)
    if changed:
        publish_after_commit(db, [event])
    return result


def _stop(
    tr: Transaction, ctx: TenantContext, workspace_id: str, event: OutboxEvent, stamp: datetime
) -> tuple[WorkspaceRecord, bool]:
    record = _own(tr, ctx, workspace_id)
    if record.status not in ACTIVE:
        return record, False
    stopping = lifecycle.advance(record, "stopping", stamp, reason="stopped_by_user")
    repository.save(tr, stopping, record)
    record_outbox(tr, event)
    return stopping, True
