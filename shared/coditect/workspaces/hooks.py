"""Session purge hook: deleting a workspace session stops its workspaces and drops their records.

Imported by `coditect.sessions.extensions` (listed in AREA_HOOK_MODULES). The hook runs in the
purge's own bounded transaction, after the session was marked deleted (no new allocation can
start for it), so it cannot call the backend itself: it records a `stop_requested` event (reason
`session_deleted`) in the outbox for every workspace that may still have a workload, then deletes
the record with its indexes, its small keys and its global live-index entry. The provisioner's
stop handler removes the workload of a record that no longer exists, and the reconciler stops any
workload left without a live record, so nothing is orphaned even if the event is lost. The
outbox is published by the next drain (the cron reconcile) or flush.
"""

from __future__ import annotations

from coditect import event_types
from coditect.events import OutboxEvent, record_outbox
from coditect.sessions import hooks
from coditect.store import Transaction
from coditect.workspaces import lifecycle, repository
from coditect.workspaces.models import LIVE

BATCH = 20  # workspaces per purge step: each is a record, ~8 index keys and maybe one event


def purge_session_workspaces(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    records = repository.by_session(tr, tenant_id, session_id, limit=BATCH + 1)  # one more: done?
    for record in records[:BATCH]:
        if record.status in LIVE:
            data = {"workspace_id": record.id, "tenant_id": tenant_id, "reason": "session_deleted"}
            record_outbox(
                tr,
                OutboxEvent.new(
                    event_types.WORKSPACE_STOP_REQUESTED, lifecycle.SOURCE, data, subject=record.id
                ),
            )
        repository.delete(tr, record)
    return len(records) <= BATCH


hooks.register_purge_hook(purge_session_workspaces)
