"""The files functions' HTTP glue: the session's FileSpace, ETag headers, conditional requests,
Range and streaming of raw file answers.

GET answers are the raw bytes (not enveloped; errors still are), streamed from the chunks by a
generator so a 100 MiB file is never held in memory. One byte range is served as 206 with
Content-Range; a request with several ranges gets the whole file (200), which RFC 9110 allows;
an unsatisfiable range is 416 `range_not_satisfiable` with `Content-Range: bytes */<size>`.

User content is served so that it can never act on the API's origin (issue 15 item 4): every
answer carries `Content-Security-Policy: sandbox; default-src 'none'; ...` (a document rendered
anyway runs in an opaque origin with no scripts, forms or loads), `X-Content-Type-Options:
nosniff`, and `Content-Disposition: attachment` unless the stored type is in `INLINE_TYPES`
(passive formats a browser displays without running anything: plain text, images other than
SVG, audio, video, JSON). HTML, SVG, XML, JavaScript, PDF and anything unknown download.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from urllib.parse import quote

from flask import Request, Response
from werkzeug.http import http_date, parse_etags, parse_range_header

from coditect.errors import ApiError, BadRequest
from coditect.files.models import FileInfo
from coditect.files.paths import FilePath
from coditect.files.service import Readable, iter_content
from coditect.files.tree import FileSpace
from coditect.files.versions import Preconditions
from coditect.http.call import Reply
from coditect.identity.context import TenantContext
from coditect.sessions.access import require_session
from coditect.store import Database, Transaction

DEFAULT_TYPE = "application/octet-stream"
# Served inline; everything else is an attachment. No type here can carry script (SVG and PDF can).
INLINE_TYPES = frozenset(
    {
        "text/plain", "text/csv", "text/markdown", "application/json",
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
        "audio/mpeg", "audio/ogg", "audio/wav", "audio/webm", "audio/flac",
        "video/mp4", "video/webm", "video/ogg",
    }
)  # fmt: skip
USER_CONTENT_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)


class RangeNotSatisfiable(ApiError):
    status = 416
    default_code = "range_not_satisfiable"
    default_message = "The requested range is outside the file."


def space(ctx: TenantContext, sid: str) -> FileSpace:
    """The files of the caller's workspace session `sid`.

    Every route resolves the session through `require_session` inside the same transaction as
    its work: another user's or tenant's session, a deleted one and a missing one are all 404
    not_found, on every route."""

    def guard(tr: Transaction) -> None:
        require_session(tr, ctx, sid)

    return FileSpace(ctx.tenant_id, sid, guard)


def quoted(etag: str) -> str:
    return f'"{etag}"'


def tagged(info: FileInfo, status: int | None = None) -> Reply:
    """`info` as the answer, with its ETag and version headers when it is a file."""
    headers = {"ETag": quoted(info.etag), "X-File-Version": str(info.version)} if info.etag else {}
    return Reply(info, status=status, headers=headers)


def _etag_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    parsed = parse_etags(value)
    if parsed.star_tag:
        return ("*",)
    # An empty tag (`""`, `W/""`) parses as None: it names no version, so it matches nothing.
    tags = parsed.as_set(include_weak=True)
    return tuple(sorted(tag for tag in tags if tag))


def preconditions(request: Request) -> Preconditions:
    """If-Match / If-None-Match of a write (weak tags compare like strong ones: one writer per etag)."""
    return Preconditions(
        if_match=_etag_list(request.headers.get("If-Match")),
        if_none_match=_etag_list(request.headers.get("If-None-Match")),
    )


def content_type_of(request: Request, path: FilePath) -> str:
    """The upload's Content-Type, else a guess from the name, else application/octet-stream."""
    given = (request.headers.get("Content-Type") or "").strip()
    if given:
        if len(given) > 255 or not given.isprintable():
            raise BadRequest("The Content-Type header is not valid.", code="invalid_content_type")
        return given
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or DEFAULT_TYPE


def disposition(content_type: str, name: str) -> str:
    """`inline` for `INLINE_TYPES`, else `attachment`; with the file name (RFC 6266 / 8187)."""
    base = content_type.split(";", 1)[0].strip().lower()
    kind = "inline" if base in INLINE_TYPES else "attachment"
    if not name:
        return kind
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_headers(readable: Readable, name: str = "") -> dict[str, str]:
    record = readable.record
    return {
        "ETag": quoted(record.etag),
        "X-File-Version": str(record.version),
        "Last-Modified": http_date(record.created_at),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": disposition(record.content_type, name),
        "Content-Security-Policy": USER_CONTENT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


def file_response(db: Database, tenant_id: str, readable: Readable, request: Request) -> Response:
    """The GET/HEAD answer for one file version, honouring If-None-Match and Range."""
    record = readable.record
    headers = file_headers(readable, request.path.rsplit("/", 1)[-1])
    wanted = _etag_list(request.headers.get("If-None-Match"))
    if wanted is not None and ("*" in wanted or record.etag in wanted):
        return Response(status=304, headers=headers)
    size = record.size
    start, stop, status = 0, size, 200
    if request.headers.get("Range"):
        parsed = parse_range_header(request.headers["Range"])
        if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
            window = parsed.range_for_length(size)
            if window is None:
                raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
            start, stop = window
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    body: Iterator[bytes] = (
        iter(()) if request.method == "HEAD" else iter_content(db, tenant_id, readable.manifest, start, stop)
    )
    response = Response(body, status=status, headers=headers, direct_passthrough=True)
    response.headers["Content-Type"] = record.content_type
    response.headers["Content-Length"] = str(stop - start)
    return response
