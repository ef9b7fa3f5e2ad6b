"""/api/v5/settings: the caller's settings (keys [a-z0-9._-]{1,128}, JSON values ≤ 64 KiB)."""

from typing import Any

from coditect.http import Call, FunctionApp
from coditect.sessions import settings
from coditect.sessions.models import Setting

app = FunctionApp("settings")


@app.route("settings.list")
def list_settings(call: Call) -> dict[str, Any]:
    return settings.all_settings(call.db, call.ctx)


@app.route("settings.get")
def get_setting(call: Call) -> Setting:
    return settings.get(call.db, call.ctx, call.params["key"])


@app.route("settings.put")
def put_setting(call: Call) -> Setting:
    return settings.put(call.db, call.ctx, call.params["key"], call.body.value)


@app.route("settings.delete")
def delete_setting(call: Call) -> None:
    settings.delete(call.db, call.ctx, call.params["key"])


handle = app.entrypoint()
