"""The sync agent's reports: `PUT /api/v5/workspaces/{id}/sync` stores the latest one, and
`GET /workspaces[/{id}]` shows it as the workspace's `sync` object.

One small key per workspace, `space(tid) / ("sync", wid)` → SyncStatus JSON, beside the record
(not in it): a report every few seconds must never conflict with a status transition. Cleared with
the record (session purge). Only the workspace's own credential may write it (403 for a user's
token: a user cannot fake their workspace's sync state); the credential's checks already refused a
stopped/failed workspace (401).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from coditect.errors import Forbidden, NotFound
from coditect.identity.context import TenantContext
from coditect.store import Database, Transaction
from coditect.workspaces import credentials, repository
from coditect.workspaces.models import SyncReport, SyncStatus, WorkspaceRecord


def sync_key(tenant_id: str, workspace_id: str) -> bytes:
    return repository.space(tenant_id).key("sync", workspace_id)


def store(db: Database, ctx: TenantContext, workspace_id: str, report: SyncReport) -> SyncStatus:
    """Keep `report` as the workspace's latest (the caller must be that workspace's credential)."""
    if credentials.workspace_of(ctx) != workspace_id:
        raise Forbidden("Only the workspace's sync agent reports its sync state.")
    status = SyncStatus(**report.model_dump(), reported_at=datetime.now(UTC))

    def write(tr: Transaction) -> None:
        record = repository.get(tr, ctx.tenant_id, workspace_id)
        if record is None or record.user_id != ctx.user_id:
            raise NotFound()
        tr.set(sync_key(ctx.tenant_id, workspace_id), status.model_dump_json().encode())

    db.transact(write)
    return status


def write_final(tr: Transaction, record: WorkspaceRecord, report: SyncReport) -> None:
    """The provisioner's own last word when the agent could not deliver it (a flush timeout)."""
    status = SyncStatus(**report.model_dump(), reported_at=datetime.now(UTC))
    tr.set(sync_key(record.tenant_id, record.id), status.model_dump_json().encode())


def read(tr: Transaction, tenant_id: str, workspace_id: str) -> SyncStatus | None:
    raw = tr.get(sync_key(tenant_id, workspace_id), snapshot=True)
    return None if raw is None else SyncStatus.model_validate_json(raw)


def read_many(db: Database, records: Iterable[WorkspaceRecord]) -> dict[str, SyncStatus]:
    """The reports of `records` (those that have one), in one transaction."""
    wanted = list(records)

    def go(tr: Transaction) -> dict[str, SyncStatus]:
        out = {}
        for record in wanted:
            status = read(tr, record.tenant_id, record.id)
            if status is not None:
                out[record.id] = status
        return out

    return db.transact(go) if wanted else {}


def clear(tr: Transaction, tenant_id: str, workspace_id: str) -> None:
    tr.clear(sync_key(tenant_id, workspace_id))
