"""/api/v5/sessions/{sid}/files:{move,mkdir,versions,restore,changes} — the tree operations and
the change feed (long-polls up to 30 s, hence a Service of its own). Logic: `coditect.files`."""

from typing import Any

from coditect.files import api
from coditect.files.model import ChangesPage, FileInfo
from coditect.http import Call, FunctionApp, Reply

app = FunctionApp("files-ops")


@app.route("files.move")
def move(call: Call) -> Reply:
    return api.move(call)


@app.route("files.mkdir")
def mkdir(call: Call) -> FileInfo:
    return api.mkdir(call)


@app.route("files.versions")
def versions(call: Call) -> dict[str, Any]:
    return api.versions(call)


@app.route("files.restore")
def restore(call: Call) -> Reply:
    return api.restore(call)


@app.route("files.changes")
def changes(call: Call) -> ChangesPage:
    return api.feed(call)


handle = app.entrypoint()
