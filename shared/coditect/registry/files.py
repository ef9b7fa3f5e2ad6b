"""Files functions: `files` (content: PUT/GET/HEAD/DELETE and listing) and `files-ops`
(move, mkdir, versions, restore, change feed) — two Knative Services so the long-polls of the
change feed never take the threads that stream content.

Design notes the summaries repeat: paths follow the contract's rules (400 invalid_path; `\\`,
percent-encoded traversal and Unicode look-alikes of `.`/`/` are refused too); raw GET/HEAD answers
are not enveloped (errors are); `prefix` names a directory (empty: the root) and a listing is
name-ordered, depth-first when `recursive=true`; a move is two change entries `moved_from` and
`moved_to`. Per-tenant usage (logical and physical bytes) is internal (`coditect.files.quota`),
not a route.
"""

from coditect.registry.spec import FunctionSpec, Route

M = "coditect.files.models"
BASE = "/api/v5/sessions/<uuid:sid>/files"
FILE = BASE + "/<path:path>"
_PATH = ((400, "invalid_path"),)
_RAW_HEADERS = ("ETag", "X-File-Version", "Content-Length")

FUNCTIONS = (
    FunctionSpec(
        name="files",
        description="Session files: streamed upload and download, listing, delete.",
        routes=(
            Route(
                "files.put",
                "PUT",
                FILE,
                status=201,
                raw_body=True,
                summary=(
                    "Write a file from the raw body (streamed, up to the configured maximum, default "
                    "100 MiB): 201 `file` when created, 200 when a new version was written. Parent "
                    "directories are implied. If-Match / If-None-Match: * honoured (412). Content-Type "
                    "is kept (guessed from the name when absent)."
                ),
                response=f"{M}:FileInfo",
                also=((200, "A new version of an existing file was written"),),
                request_headers=("If-Match", "If-None-Match"),
                response_headers=("ETag", "X-File-Version"),
                errors=(
                    *_PATH,
                    (409, "is_a_directory"),
                    (409, "not_a_directory"),
                    (412, "precondition_failed"),
                    (413, "file_too_large"),
                    (507, "quota_exceeded"),
                ),
            ),
            Route(
                "files.head",
                "HEAD",
                FILE,
                enveloped=False,
                query=f"{M}:ReadQuery",
                summary="Headers of the GET answer (ETag, Content-Type, Content-Length, X-File-Version), no body",
                media="application/octet-stream",
                also=((304, "Not modified: the If-None-Match ETag is current"),),
                request_headers=("If-None-Match",),
                response_headers=_RAW_HEADERS,
                errors=(*_PATH, (409, "is_a_directory")),
            ),
            Route(
                "files.get",
                "GET",
                FILE,
                enveloped=False,
                query=f"{M}:ReadQuery",
                summary=(
                    "Raw bytes with ETag, Content-Type, Content-Length, X-File-Version; one Range → 206 "
                    "(416 range_not_satisfiable); If-None-Match → 304; `?version=N` reads an older version. "
                    "Errors are enveloped."
                ),
                media="application/octet-stream",
                also=(
                    (206, "The requested byte range"),
                    (304, "Not modified: the If-None-Match ETag is current"),
                ),
                request_headers=("Range", "If-None-Match"),
                response_headers=_RAW_HEADERS,
                errors=(*_PATH, (409, "is_a_directory"), (416, "range_not_satisfiable")),
            ),
            Route(
                "files.delete",
                "DELETE",
                FILE,
                status=204,
                query=f"{M}:DeleteQuery",
                summary=(
                    "Delete a file (with its versions) or a directory; a non-empty directory needs "
                    "`recursive=true` (409 directory_not_empty). If-Match honoured."
                ),
                request_headers=("If-Match",),
                errors=(*_PATH, (409, "directory_not_empty"), (412, "precondition_failed")),
            ),
            Route(
                "files.list",
                "GET",
                BASE,
                query=f"{M}:ListQuery",
                response=f"{M}:FileInfo",
                paged=True,
                summary=(
                    "Entries of directory `prefix` (empty: the root) in name order; `recursive=true` "
                    "walks the subtree depth-first. Each page is one consistent view. A file as prefix "
                    "lists that file; a missing prefix is 404."
                ),
                errors=_PATH,
            ),
        ),
    ),
    FunctionSpec(
        name="files-ops",
        description="Session files: move, mkdir, versions, restore and the change feed (long-poll).",
        concurrency=32,  # change-feed long-polls hold a thread for up to 30 s each
        routes=(
            Route(
                "files.move",
                "POST",
                BASE + ":move",
                body=f"{M}:MoveBody",
                response=f"{M}:FileInfo",
                summary=(
                    "Move/rename a file or a whole directory in one transaction (readers see it all at "
                    "the old or all at the new place). Missing parents of `to` are created. An existing "
                    "`to` is 409 already_exists unless `overwrite` (a file, or an empty directory)."
                ),
                errors=(
                    *_PATH,
                    (409, "already_exists"),
                    (409, "directory_not_empty"),
                    (409, "invalid_move"),
                    (409, "is_a_directory"),
                    (409, "not_a_directory"),
                ),
            ),
            Route(
                "files.mkdir",
                "POST",
                BASE + ":mkdir",
                status=201,
                body=f"{M}:MkdirBody",
                response=f"{M}:FileInfo",
                summary="Create a directory (and missing parents); an existing directory is returned (201)",
                errors=(*_PATH, (409, "already_exists"), (409, "not_a_directory")),
            ),
            Route(
                "files.versions",
                "GET",
                BASE + ":versions",
                query=f"{M}:VersionsQuery",
                response=f"{M}:VersionInfo",
                paged=True,
                summary="Versions of a file, newest first (retention: newest N and/or T days)",
                errors=(*_PATH, (409, "is_a_directory")),
            ),
            Route(
                "files.restore",
                "POST",
                BASE + ":restore",
                body=f"{M}:RestoreBody",
                response=f"{M}:FileInfo",
                summary="A new version whose content is that of `version`",
                errors=(*_PATH, (409, "is_a_directory"), (507, "quota_exceeded")),
            ),
            Route(
                "files.changes",
                "GET",
                BASE + ":changes",
                query=f"{M}:ChangesQuery",
                response=f"{M}:ChangesPage",
                summary=(
                    "Changes after cursor `since` (from the start without it), in commit order, each "
                    "exactly once: {seq, path, op, etag}, op ∈ created, modified, deleted, moved_from, "
                    "moved_to. `wait` (≤ 30 s) long-polls until a change or the timeout. `limit` ≤ 1000."
                ),
                errors=((400, "invalid_cursor"),),
            ),
        ),
    ),
)
