"""/api/v5/users/me: the caller's user, password and login sessions."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.identity import users
from coditect.identity.models import UserOut

app = FunctionApp("users")


@app.route("users.me.get")
def get_me(call: Call) -> UserOut:
    return users.get_me(call.db, call.ctx)


@app.route("users.me.patch")
def patch_me(call: Call) -> UserOut:
    return users.patch_me(call.db, call.ctx, call.body)


@app.route("users.password.put")
def change_password(call: Call) -> None:
    users.change_password(call.db, call.settings, call.ctx, call.origin, call.body)


@app.route("users.auth_sessions.list")
def list_sessions(call: Call) -> dict[str, Any]:
    return page(*users.list_sessions(call.db, call.settings, call.ctx, call.query))


@app.route("users.auth_sessions.delete")
def delete_session(call: Call) -> None:
    users.delete_session(call.db, call.ctx, call.origin, call.uuid_param("id"))


handle = app.entrypoint()
