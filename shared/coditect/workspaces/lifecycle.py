"""The workspace state machine: which transitions exist, and the event each one emits.

::

    requested ──▶ provisioning ──▶ ready ──▶ stopping ──▶ stopped
        │              │             │          ▲
        │              ├─────────────┴──▶ failed│   (provisioner: ProvisionFailed reason;
        │              │                        │    reconcile: crashed, start_timeout)
        ├──────────────┴────────────────────────┘   (user stop, idle_timeout, max_lifetime,
        └──▶ failed (start_timeout)                  session_deleted)

`requested` is written by allocate; `provisioning`, `ready`, `failed` and `stopped` by the
provisioner function; `stopping` by DELETE, the reconciler and the session purge hook;
`failed`/`crashed` and `failed`/`start_timeout` also by the reconciler. `stopped` and `failed`
are terminal: a new allocation makes a new workspace. Every transition is appended to the
record's history with its reason and time, and `status_reason` always explains the current
status (None while requested/provisioning/ready).
"""

from __future__ import annotations

from datetime import datetime

from coditect import event_types
from coditect.workspaces.models import HISTORY_LIMIT, Status, Transition, WorkspaceRecord
from coditect.workspaces.provisioner import Endpoint

ALLOWED: dict[str, frozenset[str]] = {
    "requested": frozenset({"provisioning", "failed", "stopping"}),
    "provisioning": frozenset({"ready", "failed", "stopping"}),
    "ready": frozenset({"stopping", "failed"}),
    "stopping": frozenset({"stopped"}),
    "stopped": frozenset(),
    "failed": frozenset(),
}

# CloudEvent types (source SOURCE); `requested`/`stop_requested` go to the provisioner.
SOURCE = "/coditect/workspaces"
EMITS: dict[str, str] = {
    "ready": event_types.WORKSPACE_READY,
    "failed": event_types.WORKSPACE_FAILED,
    "stopped": event_types.WORKSPACE_STOPPED,
}


class IllegalTransition(Exception):
    """A transition the state machine does not have (a concurrent writer got there first)."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"{current} -> {target}")
        self.current, self.target = current, target


def can(record: WorkspaceRecord, target: Status) -> bool:
    return target in ALLOWED[record.status]


def advance(
    record: WorkspaceRecord,
    target: Status,
    now: datetime,
    *,
    reason: str | None = None,
    endpoint: Endpoint | None = None,
) -> WorkspaceRecord:
    """The record after the transition `record.status → target` (pure; raises IllegalTransition).

    The endpoint is kept only while `ready` (the relay must never reach a stopping workload);
    entering `stopped` keeps the stop reason of `stopping` unless another is given.
    """
    if not can(record, target):
        raise IllegalTransition(record.status, target)
    if target == "ready" and endpoint is None:
        raise ValueError("a ready workspace needs an endpoint")
    if target == "stopped" and reason is None:
        reason = record.status_reason
    history = [*record.history, Transition(status=target, reason=reason, at=now)][-HISTORY_LIMIT:]
    changes: dict[str, object] = {
        "status": target,
        "status_reason": reason,
        "updated_at": now,
        "history": history,
        "endpoint_host": endpoint.host if endpoint else None,
        "endpoint_port": endpoint.port if endpoint else None,
    }
    if target == "ready":
        changes["ready_at"] = now
    return record.model_copy(update=changes)


def endpoint_of(record: WorkspaceRecord) -> Endpoint | None:
    """Where the relay connects, only while ready."""
    if record.status != "ready" or record.endpoint_host is None or record.endpoint_port is None:
        return None
    return Endpoint(record.endpoint_host, record.endpoint_port)
