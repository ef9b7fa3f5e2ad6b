"""POST /api/v5/workspaces — allocate (or find) a workspace for one of the caller's sessions."""

from coditect.http import Call, FunctionApp
from coditect.workspaces import service
from coditect.workspaces.models import Workspace

app = FunctionApp("workspace-allocate")


@app.route("workspaces.allocate")
def allocate(call: Call) -> Workspace:
    record = service.allocate(
        call.db,
        call.ctx,
        str(call.body.session_id),
        call.settings,
        idempotency_key=call.request.headers.get("Idempotency-Key"),
    )
    return Workspace.of(record)


handle = app.entrypoint()
