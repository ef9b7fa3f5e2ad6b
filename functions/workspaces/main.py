"""GET/DELETE /api/v5/workspaces[/{id}], POST /api/v5/workspaces/{id}/tickets and the sync agent's
PUT /api/v5/workspaces/{id}/sync."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.workspaces import service, sync_reports, tickets
from coditect.workspaces.models import SyncStatus, TicketOut, Workspace

app = FunctionApp("workspaces")


@app.route("workspaces.list")
def list_workspaces(call: Call) -> dict[str, Any]:
    records, next_cursor = service.list_page(
        call.db, call.ctx, limit=call.query.limit, cursor=call.query.cursor
    )
    reports = sync_reports.read_many(call.db, records)
    return page([Workspace.of(r, reports.get(r.id)) for r in records], next_cursor)


@app.route("workspaces.get")
def get_workspace(call: Call) -> Workspace:
    record = service.get(call.db, call.ctx, call.uuid_param("id"))
    return Workspace.of(record, sync_reports.read_many(call.db, [record]).get(record.id))


@app.route("workspaces.stop")
def stop_workspace(call: Call) -> Workspace:
    return Workspace.of(service.stop(call.db, call.ctx, call.uuid_param("id")))


@app.route("workspaces.ticket")
def issue_ticket(call: Call) -> TicketOut:
    return tickets.issue_ticket(call.db, call.ctx, call.uuid_param("id"), settings=call.settings)


@app.route("workspaces.sync")
def report_sync(call: Call) -> SyncStatus:
    return sync_reports.store(call.db, call.ctx, call.uuid_param("id"), call.body)


handle = app.entrypoint()
