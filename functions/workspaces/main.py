"""GET/DELETE /api/v5/workspaces[/{id}] and POST /api/v5/workspaces/{id}/tickets."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.workspaces import service, tickets
from coditect.workspaces.models import TicketOut, Workspace

app = FunctionApp("workspaces")


@app.route("workspaces.list")
def list_workspaces(call: Call) -> dict[str, Any]:
    records, next_cursor = service.list_page(
        call.db, call.ctx, limit=call.query.limit, cursor=call.query.cursor
    )
    return page([Workspace.of(r) for r in records], next_cursor)


@app.route("workspaces.get")
def get_workspace(call: Call) -> Workspace:
    return Workspace.of(service.get(call.db, call.ctx, call.uuid_param("id")))


@app.route("workspaces.stop")
def stop_workspace(call: Call) -> Workspace:
    return Workspace.of(service.stop(call.db, call.ctx, call.uuid_param("id")))


@app.route("workspaces.ticket")
def issue_ticket(call: Call) -> TicketOut:
    return tickets.issue_ticket(call.db, call.ctx, call.uuid_param("id"), settings=call.settings)


handle = app.entrypoint()
