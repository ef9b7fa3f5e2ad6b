"""/api/v5/sessions/{sid}/files[/{path}]: streamed upload and download, HEAD, delete, listing.

The logic is in `coditect.files` (`files.http` holds the HTTP details this module shares with
files-ops)."""

import time
from typing import Any

from flask import Response

from coditect.files import paths, service, upload
from coditect.files.http import content_type_of, file_response, preconditions, space, tagged
from coditect.files.models import FileInfo
from coditect.files.quota import Policy
from coditect.http import Call, FunctionApp, Reply, page

app = FunctionApp("files")

DELETE_BUDGET_SECONDS = 2.0  # a recursive delete's release work done in the request; GC does the rest


@app.route("files.put")
def put_file(call: Call) -> Reply:
    path, request = paths.parse(call.params["path"]), call.request
    written = upload.write_stream(
        call.db,
        space(call.ctx, call.uuid_param("sid")),
        path,
        request.stream,
        content_length=request.content_length,
        content_type=content_type_of(request, path),
        conditions=preconditions(request),
        policy=Policy.from_settings(call.settings),
    )
    return tagged(FileInfo.of(path.text, written.entry), 201 if written.created else 200)


@app.route("files.get")
def get_file(call: Call) -> Response:
    fs = space(call.ctx, call.uuid_param("sid"))
    readable = service.open_file(call.db, fs, paths.parse(call.params["path"]), call.query.version)
    return file_response(call.db, fs.tenant_id, readable, call.request)


app.route("files.head")(get_file)


@app.route("files.delete")
def delete_file(call: Call) -> None:
    service.delete(
        call.db,
        space(call.ctx, call.uuid_param("sid")),
        paths.parse(call.params["path"]),
        recursive=call.query.recursive,
        conditions=preconditions(call.request),
        deadline=time.monotonic() + DELETE_BUDGET_SECONDS,
    )


@app.route("files.list")
def list_files(call: Call) -> dict[str, Any]:
    q = call.query
    items, cursor = service.list_files(
        call.db,
        space(call.ctx, call.uuid_param("sid")),
        paths.parse(q.prefix, allow_root=True),
        recursive=q.recursive,
        limit=q.limit,
        cursor=q.cursor,
    )
    return page(items, cursor)


handle = app.entrypoint()
