"""/api/v5/sessions/{id}/conversations and /api/v5/conversations/{id}."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.sessions import conversations
from coditect.sessions.models import Conversation

app = FunctionApp("conversations")


@app.route("conversations.list")
def list_conversations(call: Call) -> dict[str, Any]:
    items, cursor = conversations.page(call.db, call.ctx, call.uuid_param("id"), call.query)
    return page(items, cursor)


@app.route("conversations.create")
def create_conversation(call: Call) -> Conversation:
    return conversations.create(call.db, call.ctx, call.uuid_param("id"), call.body, call.idempotency_key)


@app.route("conversations.get")
def get_conversation(call: Call) -> Conversation:
    return conversations.get(call.db, call.ctx, call.uuid_param("id"))


@app.route("conversations.update")
def update_conversation(call: Call) -> Conversation:
    return conversations.update(call.db, call.ctx, call.uuid_param("id"), call.body)


@app.route("conversations.delete")
def delete_conversation(call: Call) -> None:
    conversations.delete(call.db, call.ctx, call.uuid_param("id"))


handle = app.entrypoint()
