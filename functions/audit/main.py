"""GET /api/v5/audit — the tenant's audit events, newest first (owner/admin)."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.identity import audit_log

app = FunctionApp("audit")


@app.route("audit.list")
def list_events(call: Call) -> dict[str, Any]:
    return page(*audit_log.list_events(call.db, call.ctx, call.query))


handle = app.entrypoint()
