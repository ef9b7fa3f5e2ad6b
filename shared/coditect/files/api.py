"""Handlers' glue: one function per route of `files` and `files-ops`, from a `Call` to an answer.

Every route resolves the session through `sessions.access.require_session` inside the same
transaction as its work (the FileSpace guard): another user's or tenant's session, a deleted
one and a missing one are all 404 not_found, on every route.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response

from coditect.files import changes, paths, store, upload
from coditect.files.http import content_type_of, file_response, preconditions, quoted
from coditect.files.model import ChangesPage, FileInfo
from coditect.files.quota import Policy
from coditect.files.tree import FileSpace
from coditect.http import Call, Reply, page
from coditect.sessions.access import require_session
from coditect.store import Transaction

DELETE_BUDGET_SECONDS = 2.0  # a recursive delete's release work done in the request; GC does the rest


def space(call: Call) -> FileSpace:
    ctx, sid = call.ctx, call.uuid_param("sid")

    def guard(tr: Transaction) -> None:
        require_session(tr, ctx, sid)

    return FileSpace(ctx.tenant_id, sid, guard)


def _now() -> datetime:
    return datetime.now(UTC)


def _ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(max(n, 1))]


def _tagged(info: FileInfo, status: int | None = None) -> Reply:
    headers = {"ETag": quoted(info.etag), "X-File-Version": str(info.version)} if info.etag else {}
    return Reply(info, status=status, headers=headers)


def put(call: Call) -> Reply:
    fs = space(call)
    path = paths.parse(call.params["path"])
    request = call.request
    written = upload.write_stream(
        call.db,
        fs,
        path,
        request.stream,
        content_length=request.content_length,
        content_type=content_type_of(request, path),
        conditions=preconditions(request),
        policy=Policy.from_settings(call.settings),
    )
    return _tagged(FileInfo.of(path.text, written.entry), 201 if written.created else 200)


def read(call: Call) -> Response:
    fs = space(call)
    path = paths.parse(call.params["path"])
    readable = store.open_file(call.db, fs, path, call.query.version)
    return file_response(call.db, fs.tenant_id, readable, call.request)


def delete(call: Call) -> None:
    fs = space(call)
    store.delete(
        call.db,
        fs,
        paths.parse(call.params["path"]),
        recursive=call.query.recursive,
        conditions=preconditions(call.request),
        deadline=time.monotonic() + DELETE_BUDGET_SECONDS,
    )


def listing(call: Call) -> dict[str, Any]:
    q = call.query
    items, cursor = store.list_files(
        call.db,
        space(call),
        paths.parse(q.prefix, allow_root=True),
        recursive=q.recursive,
        limit=q.limit,
        cursor=q.cursor,
    )
    return page(items, cursor)


def move(call: Call) -> Reply:
    body = call.body
    src, dst = paths.parse(body.from_), paths.parse(body.to)
    info = store.move(
        call.db, space(call), src, dst, overwrite=body.overwrite, ids=_ids(len(dst.segments)), now=_now()
    )
    return _tagged(info)


def mkdir(call: Call) -> FileInfo:
    path = paths.parse(call.body.path)
    return store.mkdir(call.db, space(call), path, _ids(len(path.segments)), _now())


def versions(call: Call) -> dict[str, Any]:
    q = call.query
    items, cursor = store.list_versions(
        call.db, space(call), paths.parse(q.path), limit=q.limit, cursor=q.cursor
    )
    return page(items, cursor)


def restore(call: Call) -> Reply:
    body = call.body
    info = store.restore(
        call.db,
        space(call),
        paths.parse(body.path),
        body.version,
        restore_id=uuid.uuid4().hex,
        now=_now(),
        policy=Policy.from_settings(call.settings),
    )
    return _tagged(info)


def feed(call: Call) -> ChangesPage:
    q = call.query
    return changes.read_changes(call.db, space(call), q.since, limit=q.limit, wait=q.wait)
