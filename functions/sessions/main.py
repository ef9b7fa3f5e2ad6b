"""/api/v5/sessions: workspace sessions — list, create, read, update (If-Match), delete, fork, related."""

from typing import Any

from coditect.http import Call, FunctionApp, Reply, page
from coditect.sessions import fork, related, service
from coditect.sessions.models import Related, Session, SessionRecord

app = FunctionApp("sessions")

# Seconds a DELETE request spends purging before leaving the rest to the ops gc job.
PURGE_BUDGET_SECONDS = 2.0


def _tagged(record: SessionRecord, status: int | None = None) -> Reply:
    return Reply(Session.of(record), status=status, headers={"ETag": record.etag})


@app.route("sessions.list")
def list_sessions(call: Call) -> dict[str, Any]:
    records, cursor = service.page(call.db, call.ctx, call.query)
    return page([Session.of(r) for r in records], cursor)


@app.route("sessions.create")
def create_session(call: Call) -> Reply:
    return _tagged(service.create(call.db, call.ctx, call.body, call.idempotency_key))


@app.route("sessions.get")
def get_session(call: Call) -> Reply:
    return _tagged(service.get(call.db, call.ctx, call.uuid_param("id")))


@app.route("sessions.update")
def update_session(call: Call) -> Reply:
    if_match = call.request.headers.get("If-Match")
    return _tagged(service.update(call.db, call.ctx, call.uuid_param("id"), call.body, if_match))


@app.route("sessions.delete")
def delete_session(call: Call) -> None:
    service.delete(call.db, call.ctx, call.uuid_param("id"), budget_seconds=PURGE_BUDGET_SECONDS)


@app.route("sessions.fork")
def fork_session(call: Call) -> Reply:
    return _tagged(fork.fork(call.db, call.ctx, call.uuid_param("id"), call.body.name))


@app.route("sessions.related")
def related_sessions(call: Call) -> Related:
    return related.related(call.db, call.ctx, call.uuid_param("id"), call.query)


handle = app.entrypoint()
