"""/api/v5/conversations/{id}/messages: list in commit order, append."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.sessions import messages
from coditect.sessions.models import Message

app = FunctionApp("messages")


@app.route("messages.list")
def list_messages(call: Call) -> dict[str, Any]:
    q = call.query
    items, cursor = messages.page(call.db, call.ctx, call.uuid_param("id"), limit=q.limit, cursor=q.cursor)
    return page(items, cursor)


@app.route("messages.append")
def append_message(call: Call) -> Message:
    return messages.append(call.db, call.ctx, call.uuid_param("id"), call.body, call.idempotency_key)


handle = app.entrypoint()
