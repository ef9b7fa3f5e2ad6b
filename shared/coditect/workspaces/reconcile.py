"""Make workloads and records agree, stop idle and over-age workspaces, finish what was left.

Called by the ops cron's `reconcile` job (every minute)::

    from coditect.workspaces.reconcile import reconcile
    counts = reconcile(db, backends.provisioner(settings), now=time.time(), budget_seconds=40)

Policy (settings in `coditect.config`, all in seconds):

- A workload whose workspace has no live record (none at all, `stopped`, `failed`, or purged with
  its session) is stopped: `orphans_stopped`.
- A `ready` record whose workload is gone or exited is marked `failed` / `crashed` (not restarted:
  the user decides; a new allocation is one click): `crashed`.
- `requested`/`provisioning` older than `workspace_start_deadline` → `failed` / `start_timeout`,
  and whatever was half-created is removed: `start_timeouts`.
- `ready` for longer than `workspace_max_lifetime` → stopped with `max_lifetime`; otherwise idle
  (no relayed activity, see `tickets.record_activity`, since max(ready_at, last activity)) for
  longer than `workspace_idle_timeout` → stopped with `idle_timeout`: `lifetime_stopped`,
  `idle_stopped`.
- `stopping` for longer than `STOPPING_GRACE` (the provisioner function missed it) is finished
  here: `stops_finished`.
- Outbox events left by a failed flush are published (`outbox_published`). Expired tickets and
  relay cookies are the ops `gc` job's (coditect.ops.maintenance), not swept here too.

Work stops when `budget_seconds` is spent (`budget_exhausted` = 1); the next run continues. A
backend that cannot be listed skips the workload checks for this run (`backend_unavailable` = 1).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from coditect import event_types
from coditect.config import Settings, get_settings
from coditect.events import PublishError, default_publisher, drain_outbox
from coditect.store import Database
from coditect.workspaces import provisioning, repository, tickets
from coditect.workspaces.models import WorkspaceRecord
from coditect.workspaces.provisioner import Provisioner, TransientProvisionError, WorkloadState

log = logging.getLogger("coditect.workspaces")
STOPPING_GRACE = 120.0  # seconds the provisioner function gets to finish a stop itself
OUTBOX_MIN_AGE = 10.0  # seconds: younger events are still being flushed by their own request


def reconcile(
    db: Database,
    provisioner: Provisioner,
    *,
    now: float | None = None,
    budget_seconds: float = 40.0,
    settings: Settings | None = None,
    outbox_min_age: float = OUTBOX_MIN_AGE,
) -> dict[str, int]:
    """One reconcile pass; returns counts (see the module docstring). `outbox_min_age` (real
    seconds) leaves alone outbox events so young that their own request may still flush them."""
    settings = settings or get_settings()
    at = time.time() if now is None else now
    deadline = time.monotonic() + budget_seconds
    counts = dict.fromkeys(
        ("orphans_stopped", "crashed", "start_timeouts", "idle_stopped", "lifetime_stopped", "stops_finished",
         "outbox_published", "budget_exhausted", "backend_unavailable"),
        0,
    )  # fmt: skip
    try:
        workloads: dict[str, WorkloadState] | None = provisioner.list_workloads()
    except TransientProvisionError as exc:
        log.warning("workspaces: reconcile cannot list workloads: %s", exc)
        workloads, counts["backend_unavailable"] = None, 1
    listed_at = at

    after: str | None = None
    while True:
        batch = db.transact(repository.live_workspaces, after=after, limit=200)
        for workspace_id, tenant_id in batch:
            if time.monotonic() > deadline:
                counts["budget_exhausted"] = 1
                return counts
            record = db.transact(repository.get, tenant_id, workspace_id)
            if record is not None:
                outcome = _check(db, provisioner, record, workloads, listed_at, at, settings)
                if outcome:
                    counts[outcome] += 1
        if len(batch) < 200:
            break
        after = batch[-1][0]

    if workloads is not None:
        for workspace_id in workloads:
            if time.monotonic() > deadline:
                counts["budget_exhausted"] = 1
                return counts
            if db.transact(repository.tenant_of, workspace_id) is None:
                _try_stop(provisioner, workspace_id)
                counts["orphans_stopped"] += 1

    if settings.sink:
        try:
            counts["outbox_published"] = drain_outbox(db, default_publisher(), min_age=outbox_min_age)
        except PublishError as exc:
            log.warning("workspaces: outbox drain failed: %s", exc)
    return counts


def _try_stop(provisioner: Provisioner, workspace_id: str) -> bool:
    try:
        provisioner.stop(workspace_id)
        return True
    except TransientProvisionError as exc:
        log.warning("workspaces: could not stop %s: %s", workspace_id, exc)
        return False


def _stamp(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _check(
    db: Database,
    provisioner: Provisioner,
    record: WorkspaceRecord,
    workloads: dict[str, WorkloadState] | None,
    listed_at: float,
    at: float,
    settings: Settings,
) -> str | None:
    age = at - record.created_at.timestamp()
    if record.status == "stopping":
        if at - record.updated_at.timestamp() < STOPPING_GRACE:
            return None
        try:
            provisioning.stop(db, provisioner, record.tenant_id, record.id)
        except TransientProvisionError:
            return None
        return "stops_finished"
    if record.status in ("requested", "provisioning"):
        if age < settings.workspace_start_deadline:
            return None
        done = _fail(db, record, "start_timeout", at)
        _try_stop(provisioner, record.id)  # remove anything half-created
        return "start_timeouts" if done else None
    if record.status != "ready" or record.ready_at is None:
        return None
    if workloads is not None and record.ready_at.timestamp() <= listed_at:
        state = workloads.get(record.id)
        if state is None or not state.running:
            try:  # confirm: the listing is a snapshot and may predate a restart of the backend
                state = provisioner.status(record.id)
            except TransientProvisionError:
                return None
            if not state.running:
                done = _fail(db, record, "crashed", at)
                _try_stop(provisioner, record.id)  # clear traces (an exited process's state file)
                return "crashed" if done else None
    ready_for = at - record.ready_at.timestamp()
    if ready_for > settings.workspace_max_lifetime:
        return "lifetime_stopped" if _stop(db, provisioner, record, "max_lifetime", at) else None
    last = max(
        record.ready_at.timestamp(), db.transact(tickets.last_activity, record.tenant_id, record.id) or 0.0
    )
    if at - last > settings.workspace_idle_timeout:
        return "idle_stopped" if _stop(db, provisioner, record, "idle_timeout", at) else None
    return None


def _fail(db: Database, record: WorkspaceRecord, reason: str, at: float) -> bool:
    event = provisioning.emit(event_types.WORKSPACE_FAILED, record.tenant_id, record.id, reason=reason)
    done = db.transact(
        provisioning.transition, record.tenant_id, record.id, frozenset({record.status}), "failed", _stamp(at),
        reason, None, event,
    )  # fmt: skip
    ok = done is not None and done.status == "failed" and done.status_reason == reason
    if ok:
        provisioning.publish(db, event)
    return ok


def _stop(db: Database, provisioner: Provisioner, record: WorkspaceRecord, reason: str, at: float) -> bool:
    done = db.transact(
        provisioning.transition,
        record.tenant_id,
        record.id,
        frozenset({"ready"}),
        "stopping",
        _stamp(at),
        reason,
    )
    if done is None or done.status != "stopping" or done.status_reason != reason:
        return False
    try:
        provisioning.stop(db, provisioner, record.tenant_id, record.id)
    except TransientProvisionError:
        pass  # recorded as stopping: the next pass (or STOPPING_GRACE) finishes it
    return True
