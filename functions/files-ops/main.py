"""/api/v5/sessions/{sid}/files:{move,mkdir,versions,restore,changes} — the tree operations and
the change feed (long-polls up to 30 s, hence a Service of its own). Logic: `coditect.files`."""

import uuid
from datetime import UTC, datetime
from typing import Any

from coditect.files import changes, paths, service
from coditect.files.http import space, tagged
from coditect.files.models import ChangesPage, FileInfo
from coditect.files.quota import Policy
from coditect.http import Call, FunctionApp, Reply, page

app = FunctionApp("files-ops")


def _ids(n: int) -> list[str]:
    """Ids for the directories a write may create, drawn once outside the retry loop."""
    return [uuid.uuid4().hex for _ in range(max(n, 1))]


@app.route("files.move")
def move(call: Call) -> Reply:
    body = call.body
    src, dst = paths.parse(body.from_), paths.parse(body.to)
    fs = space(call.ctx, call.uuid_param("sid"))
    now = datetime.now(UTC)
    return tagged(
        service.move(call.db, fs, src, dst, overwrite=body.overwrite, ids=_ids(len(dst.segments)), now=now)
    )


@app.route("files.mkdir")
def mkdir(call: Call) -> FileInfo:
    path = paths.parse(call.body.path)
    fs = space(call.ctx, call.uuid_param("sid"))
    return service.mkdir(call.db, fs, path, _ids(len(path.segments)), datetime.now(UTC))


@app.route("files.versions")
def versions(call: Call) -> dict[str, Any]:
    q = call.query
    fs = space(call.ctx, call.uuid_param("sid"))
    items, cursor = service.list_versions(call.db, fs, paths.parse(q.path), limit=q.limit, cursor=q.cursor)
    return page(items, cursor)


@app.route("files.restore")
def restore(call: Call) -> Reply:
    body = call.body
    info = service.restore(
        call.db,
        space(call.ctx, call.uuid_param("sid")),
        paths.parse(body.path),
        body.version,
        restore_id=uuid.uuid4().hex,
        now=datetime.now(UTC),
        policy=Policy.from_settings(call.settings),
    )
    return tagged(info)


@app.route("files.changes")
def feed(call: Call) -> ChangesPage:
    q = call.query
    fs = space(call.ctx, call.uuid_param("sid"))
    return changes.read_changes(call.db, fs, q.since, limit=q.limit, wait=q.wait)


handle = app.entrypoint()
