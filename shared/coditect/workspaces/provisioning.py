"""The provisioner function's work: drive a workspace to `ready`/`failed` and `stopped`.

`dispatch(db, provisioner, event)` handles `com.coditect.workspace.requested` and
`.stop_requested` (data `{"workspace_id", "tenant_id"}`, written by this package, never by a
client). It runs under `coditect.events.event_handler` (dedupe on the event id, mark written
after success), so it must be idempotent and resumable:

- requested: `requested → provisioning` is committed BEFORE the backend is called, so a process
  that dies mid-start leaves `provisioning`; the redelivered event finds it and calls
  `Provisioner.start` again, which adopts the workload already created (never a second one).
  Then `provisioning → ready` (endpoint stored server-side) or `→ failed` with the backend's
  reason. `TransientProvisionError` propagates (Knative redelivers); `ProvisionFailed` is
  recorded and acked.
- A stop that raced the start (the record is no longer `provisioning` when the start returns,
  or is gone because its session was purged) stops the fresh workload: no orphans.
- stop_requested: the workload is removed (the sync agent flushes first, bounded), then
  `stopping → stopped` (the reason given when stopping was requested is kept, unless the flush
  was not confirmed: then `sync_flush_timeout`, and the `sync` report names what was pending).
  A record already gone (session purged) still gets its workload removed.
- Every start attempt mints a workspace credential (`credentials.mint`) handed to the backend for
  the sync agent; all of them die when the workspace is stopped or failed.

Every transition emits `com.coditect.workspace.ready|failed|stopped` through the outbox.
Start durations (allocation → ready/failed) go to `coditect_workspace_start_seconds`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from cloudevents.http import CloudEvent

from coditect import event_types
from coditect.config import get_settings
from coditect.events import OutboxEvent, record_outbox
from coditect.http import metrics
from coditect.store import Database, Transaction
from coditect.workspaces import credentials, lifecycle, repository, service, sync_reports
from coditect.workspaces.models import TERMINAL, Status, SyncReport, WorkspaceRecord
from coditect.workspaces.provisioner import (
    Endpoint,
    Provisioner,
    ProvisionFailed,
    WorkspaceSpec,
)

log = logging.getLogger("coditect.workspaces")

START_SECONDS = metrics.histogram(
    "workspace_start_seconds",
    "Time from allocation to ready or failed, by backend and outcome.",
    ["backend", "outcome"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _ids(event: CloudEvent) -> tuple[str, str] | None:
    data: Any = event.get_data()
    if not isinstance(data, dict):
        return None
    try:
        wid, tid = str(uuid.UUID(str(data["workspace_id"]))), str(uuid.UUID(str(data["tenant_id"])))
    except (KeyError, ValueError):
        return None
    return (tid, wid) if (wid, tid) == (data["workspace_id"], data["tenant_id"]) else None


def dispatch(db: Database, provisioner: Provisioner, event: CloudEvent) -> str:
    """Handle one event; return what happened (for logs and tests). Raises to get a redelivery."""
    ids = _ids(event)
    if ids is None:
        log.warning("workspaces: malformed %s event %s acked", event["type"], event["id"])
        return "malformed"
    if event["type"] == event_types.WORKSPACE_REQUESTED:
        return start(db, provisioner, *ids)
    if event["type"] == event_types.WORKSPACE_STOP_REQUESTED:
        return stop(db, provisioner, *ids)
    log.warning("workspaces: unexpected event type %s acked", event["type"])
    return "ignored"


def transition(
    tr: Transaction,
    tenant_id: str,
    workspace_id: str,
    expect: frozenset[str],
    target: Status,
    stamp: datetime,
    reason: str | None = None,
    endpoint: Endpoint | None = None,
    event: OutboxEvent | None = None,
) -> WorkspaceRecord | None:
    """Move the record from one of `expect` to `target` (+ outbox); the current record otherwise."""
    record = repository.get(tr, tenant_id, workspace_id)
    if record is None or record.status not in expect:
        return record
    updated = lifecycle.advance(record, target, stamp, reason=reason, endpoint=endpoint)
    repository.save(tr, updated, record)
    if event is not None:
        record_outbox(tr, event)
    return updated


def publish(db: Database, event: OutboxEvent) -> None:
    """Publish a recorded event now (left in the outbox for the drain when that fails)."""
    service.publish_after_commit(db, [event])


def emit(kind: str, tenant_id: str, workspace_id: str, **extra: Any) -> OutboxEvent:
    data = {"workspace_id": workspace_id, "tenant_id": tenant_id, **extra}
    return OutboxEvent.new(kind, lifecycle.SOURCE, data, subject=workspace_id)


def start(db: Database, provisioner: Provisioner, tenant_id: str, workspace_id: str) -> str:
    record = db.transact(
        transition, tenant_id, workspace_id, frozenset({"requested"}), "provisioning", _now()
    )
    if record is None:
        return "gone"
    if record.status != "provisioning":
        return f"already_{record.status}"  # ready, failed, stopping, stopped: nothing to start
    backend = type(provisioner).__name__
    settings = get_settings()
    try:
        credential = credentials.mint(db, record, settings)
        api_url = settings.workspace_sync_api_url or settings.public_base_url
        spec = WorkspaceSpec(
            workspace_id, tenant_id, record.user_id, record.session_id, credential=credential, api_url=api_url
        )
        endpoint = provisioner.start(spec)
    except ProvisionFailed as failure:
        log.info("workspaces: %s failed: %s", workspace_id, failure)
        event = emit(event_types.WORKSPACE_FAILED, tenant_id, workspace_id, reason=failure.reason)
        done = db.transact(
            transition, tenant_id, workspace_id, frozenset({"provisioning"}), "failed", _now(),
            failure.reason, None, event,
        )  # fmt: skip
        if done is not None and done.status == "failed" and done.status_reason == failure.reason:
            service.publish_after_commit(db, [event])
            START_SECONDS.labels(backend=backend, outcome="failed").observe(_elapsed(done))
        return "failed"
    # TransientProvisionError (and any bug) propagates: the record stays `provisioning`, the
    # broker redelivers, and the next attempt resumes here.
    event = emit(event_types.WORKSPACE_READY, tenant_id, workspace_id)
    done = db.transact(
        transition,
        tenant_id,
        workspace_id,
        frozenset({"provisioning"}),
        "ready",
        _now(),
        None,
        endpoint,
        event,
    )
    if done is not None and done.status == "ready" and done.endpoint_port == endpoint.port:
        service.publish_after_commit(db, [event])
        START_SECONDS.labels(backend=backend, outcome="ready").observe(_elapsed(done))
        return "ready"
    # Stopped (or purged) while starting: the workload we just made must not outlive it.
    provisioner.stop(workspace_id)
    if done is not None and done.status == "stopping":
        return stop(db, provisioner, tenant_id, workspace_id)
    return "stopped_while_starting"


def _elapsed(record: WorkspaceRecord) -> float:
    return max(0.0, (record.updated_at - record.created_at).total_seconds())


def stop(db: Database, provisioner: Provisioner, tenant_id: str, workspace_id: str) -> str:
    record = db.transact(lambda tr: repository.get(tr, tenant_id, workspace_id))
    if record is not None and record.status not in ("stopping", *TERMINAL):
        return f"not_stopping_{record.status}"  # a stale event: the record moved on
    outcome = provisioner.stop(workspace_id)  # idempotent; TransientProvisionError → redelivery
    if record is None:
        return "gone"
    if record.status in TERMINAL:
        return f"already_{record.status}"
    unflushed = outcome is not None and not outcome.flushed
    if unflushed:
        assert outcome is not None
        log.warning(
            "workspaces: %s stopped without a confirmed sync flush: %s", workspace_id, outcome.detail[-500:]
        )
    reason = "sync_flush_timeout" if unflushed else record.status_reason
    event = emit(event_types.WORKSPACE_STOPPED, tenant_id, workspace_id, reason=reason)

    def finish(tr: Transaction) -> WorkspaceRecord | None:
        if unflushed:
            _record_flush_timeout(tr, tenant_id, workspace_id)
        return transition(
            tr, tenant_id, workspace_id, frozenset({"stopping"}), "stopped", _now(),
            "sync_flush_timeout" if unflushed else None, None, event,
        )  # fmt: skip

    done = db.transact(finish)
    if done is not None and done.status == "stopped":
        service.publish_after_commit(db, [event])
    return "stopped"


def _record_flush_timeout(tr: Transaction, tenant_id: str, workspace_id: str) -> None:
    """Make the `sync` report say flush_timeout with what was pending, when the agent could not."""
    record = repository.get(tr, tenant_id, workspace_id)
    last = sync_reports.read(tr, tenant_id, workspace_id)
    if record is None or (last is not None and last.state == "flush_timeout"):
        return
    base = last.model_dump(exclude={"reported_at", "state"}) if last is not None else {}
    sync_reports.write_final(tr, record, SyncReport(state="flush_timeout", **base))
