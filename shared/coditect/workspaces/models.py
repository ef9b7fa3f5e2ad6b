"""Workspace records (server state) and the shapes the API shows (contract: api-v5.md).

`WorkspaceRecord` is what the store holds: it carries the endpoint the relay connects to and the
transition history, neither of which a client ever sees. `Workspace` is the contract's shape,
built only by `Workspace.of(record)`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Status = Literal["requested", "provisioning", "ready", "stopping", "stopped", "failed"]
# Statuses that count against the limits and make a session's workspace "its active one".
ACTIVE: frozenset[str] = frozenset({"requested", "provisioning", "ready"})
# A workload may exist for these; the reconciler leaves such workloads alone.
LIVE: frozenset[str] = frozenset({"requested", "provisioning", "ready", "stopping"})
TERMINAL: frozenset[str] = frozenset({"stopped", "failed"})
HISTORY_LIMIT = 32  # transitions kept on the record (a workspace makes ~5; the cap bounds a loop)


class Transition(BaseModel):
    """One recorded step: the status entered, why, and when."""

    status: Status
    reason: str | None = None
    at: datetime


class WorkspaceRecord(BaseModel):
    """A workspace as stored under the owner's tenant (see `repository` for the key layout)."""

    id: str
    tenant_id: str
    user_id: str
    session_id: str  # the workspace session (project) it belongs to
    status: Status
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    ready_at: datetime | None = None
    # Server state only: where the relay connects. Set while ready, cleared when it stops.
    endpoint_host: str | None = None
    endpoint_port: int | None = None
    history: list[Transition] = Field(default_factory=list)
    # Allocation idempotency: the caller's key and a digest of the request it came with.
    idempotency_key: str | None = None
    request_digest: str | None = None


SYNC_LIST_LIMIT = 50  # pending paths and conflicts per sync report (the agent sends the first ones)
SYNC_SKIPPED_LIMIT = 100  # skipped paths per report (coditect.sync.report.MAX_SKIPPED_LISTED)
SYNC_BODY_LIMIT = 256 * 1024  # bytes of a sync report body
SyncState = Literal["hydrating", "syncing", "flushing", "stopped", "flush_timeout"]
_SyncPath = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SyncConflict(BaseModel):
    """A path both sides changed: one content kept at `path`, the other at `kept_as`."""

    model_config = ConfigDict(extra="forbid")

    path: _SyncPath
    kept_as: _SyncPath | None = None
    at: datetime | None = None


class SyncSkipped(BaseModel):
    """A local entry the agent does not upload, and why (too_large, invalid_name, symlink, ...)."""

    model_config = ConfigDict(extra="forbid")

    path: _SyncPath
    reason: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class SyncReport(BaseModel):
    """PUT /api/v5/workspaces/{id}/sync: the sync agent's latest report (workspace credential only)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "state": "syncing",
                    "last_push_at": "2026-01-01T12:00:00Z",
                    "last_pull_at": "2026-01-01T12:00:01Z",
                    "pending": 0,
                    "pending_paths": [],
                    "conflicts": [],
                    "conflict_count": 0,
                    "skipped": [{"path": "big.iso", "reason": "too_large"}],
                }
            ]
        },
    )

    state: SyncState
    last_push_at: datetime | None = None
    last_pull_at: datetime | None = None
    pending: int = Field(default=0, ge=0)
    pending_paths: list[_SyncPath] = Field(default_factory=list, max_length=SYNC_LIST_LIMIT)
    conflicts: list[SyncConflict] = Field(default_factory=list, max_length=SYNC_LIST_LIMIT)
    conflict_count: int = Field(default=0, ge=0)
    skipped: list[SyncSkipped] = Field(default_factory=list, max_length=SYNC_SKIPPED_LIMIT)


class SyncStatus(SyncReport):
    """The `sync` object of a workspace: the latest report and when it arrived."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "state": "flush_timeout",
                    "last_push_at": "2026-01-01T12:00:00Z",
                    "last_pull_at": "2026-01-01T12:00:01Z",
                    "pending": 1,
                    "pending_paths": ["src/main.py"],
                    "conflicts": [
                        {
                            "path": "notes.md",
                            "kept_as": "notes (conflict 2026-01-01).md",
                            "at": "2026-01-01T11:59:00Z",
                        }
                    ],
                    "conflict_count": 1,
                    "skipped": [],
                    "reported_at": "2026-01-01T12:00:20Z",
                }
            ]
        },
    )

    reported_at: datetime


class Workspace(BaseModel):
    """The contract's `workspace`: `{id, session_id, status, status_reason, created_at, updated_at}`,
    plus `sync` (the sync agent's latest report; null before the first one)."""

    id: str
    session_id: str
    status: Status
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    sync: SyncStatus | None = None

    @classmethod
    def of(cls, record: WorkspaceRecord, sync: SyncStatus | None = None) -> Workspace:
        return cls(
            id=record.id,
            session_id=record.session_id,
            status=record.status,
            status_reason=record.status_reason,
            created_at=record.created_at,
            updated_at=record.updated_at,
            sync=sync,
        )


class AllocateBody(BaseModel):
    """POST /api/v5/workspaces."""

    model_config = ConfigDict(extra="forbid")

    session_id: uuid.UUID


class ListQuery(BaseModel):
    """GET /api/v5/workspaces: the contract's paging parameters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=512)


class TicketOut(BaseModel):
    """POST /api/v5/workspaces/{id}/tickets (201)."""

    ticket: str
    expires_in: int
    websocket_url: str
    http_url: str
