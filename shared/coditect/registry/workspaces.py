"""Workspace functions: allocate, list/get/stop/tickets, and the CloudEvent provisioner.

Allocation is its own function (it publishes, is rate-limited and scales on its own); list,
get, stop and tickets share `workspaces`. The provisioner is the only function with the `k8s`
extra (the kubernetes client) and a Kubernetes token (infra/base/provisioner-rbac.yaml).
"""

from coditect import event_types
from coditect.registry.spec import FunctionSpec, Route

M = "coditect.workspaces.models"
WS = f"{M}:Workspace"
ID = "/api/v5/workspaces/<uuid:id>"
EVENTS = (event_types.WORKSPACE_REQUESTED, event_types.WORKSPACE_STOP_REQUESTED)

FUNCTIONS = (
    FunctionSpec(
        name="workspace-allocate",
        description="Allocate a workspace for a session (records it, publishes workspace.requested).",
        publishes=(event_types.WORKSPACE_REQUESTED,),
        routes=(
            Route(
                "workspaces.allocate",
                "POST",
                "/api/v5/workspaces",
                status=202,
                summary=(
                    "Allocate a workspace for one of your sessions. A session with an active workspace "
                    "gets that one back. `Idempotency-Key` makes retries return the same workspace; the "
                    "same key with another body answers 422 idempotency_key_reused."
                ),
                body=f"{M}:AllocateBody",
                response=WS,
                request_headers=("Idempotency-Key",),
                links=(
                    ("workspace", "workspaces.get", (("workspace_id", "$response.body#/data/id"),)),
                    ("ticket", "workspaces.ticket", (("workspace_id", "$response.body#/data/id"),)),
                ),
                errors=(
                    (404, "not_found"),
                    (409, "workspace_limit_reached"),
                    (422, "idempotency_key_reused"),
                    (429, "rate_limited"),
                ),
            ),
        ),
    ),
    FunctionSpec(
        name="workspaces",
        description="List, read and stop your workspaces; issue relay tickets; take sync agent reports.",
        publishes=(event_types.WORKSPACE_STOP_REQUESTED,),
        routes=(
            Route(
                "workspaces.list",
                "GET",
                "/api/v5/workspaces",
                summary="Your workspaces, newest first",
                query=f"{M}:ListQuery",
                response=WS,
                paged=True,
            ),
            Route("workspaces.get", "GET", ID, summary="One of your workspaces", response=WS),
            Route(
                "workspaces.stop",
                "DELETE",
                ID,
                status=202,
                summary="Stop a workspace (202 stopping; a stopped or failed one is returned unchanged)",
                response=WS,
            ),
            Route(
                "workspaces.ticket",
                "POST",
                f"{ID}/tickets",
                status=201,
                summary="A single-use relay ticket (≤ 60 s) for a ready workspace",
                response=f"{M}:TicketOut",
                errors=((409, "workspace_not_ready"),),
            ),
            Route(
                "workspaces.sync",
                "PUT",
                f"{ID}/sync",
                summary=(
                    "The sync agent's report channel: stores its latest report, shown as `sync` by GET. "
                    "Accepted only with the workspace's own credential (Bearer `cwc_…`, minted by the "
                    "provisioner; 403 forbidden with a user's token); lists ≤ 50 entries, body ≤ 256 KiB."
                ),
                body=f"{M}:SyncReport",
                max_body=256 * 1024,
                response=f"{M}:SyncStatus",
                errors=((403, "forbidden"),),
            ),
        ),
    ),
    FunctionSpec(
        name="provisioner",
        kind="cloudevent",
        description="Starts and stops workspace workloads on workspace.requested / stop_requested.",
        events=EVENTS,
        publishes=(
            event_types.WORKSPACE_READY,
            event_types.WORKSPACE_FAILED,
            event_types.WORKSPACE_STOPPED,
        ),
        extras=("k8s",),
        concurrency=4,
        memory="512Mi",
    ),
)
