"""The OpenAPI document's vocabulary: path-parameter names and schemas by resource, the headers
routes read and set, the error answers' headers, and the tags. `coditect.platform.openapi` builds
the document with these; routes name headers from here (`Route.request_headers`/`response_headers`).
"""

from __future__ import annotations

from typing import Any

from coditect.files.paths import MAX_PATH_BYTES
from coditect.sessions.models import SETTING_KEY_PATTERN

# A path parameter is named after the collection it indexes, one name per resource.
RESOURCE_PARAMS = {
    "sessions": "session_id",
    "conversations": "conversation_id",
    "workspaces": "workspace_id",
    "users": "user_id",
    "auth-sessions": "auth_session_id",
    "settings": "key",
    "files": "path",
}


# The contract's rules for path parameters by document name (the services enforce the same).
PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "key": {"type": "string", "pattern": "^" + SETTING_KEY_PATTERN + "$", "minLength": 1, "maxLength": 128},
    "path": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PATH_BYTES,
        "description": "A relative path ('/'-separated, at most 1024 bytes of UTF-8, no empty, '.' or "
        "'..' segment, no control characters); violations answer 400 invalid_path.",
    },
}
# Every header a route reads or sets, documented once; routes name them (Route.request_headers /
# response_headers). Request headers become components/parameters, answers' components/headers.
_TEXT: dict[str, Any] = {"type": "string"}
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    "If-Match": {
        "description": "The ETag the current version must have (else 412 precondition_failed).",
        "schema": {"type": "string"},
    },
    "If-None-Match": {
        "description": "`*` writes only when nothing exists yet (else 412); on a read, an ETag the "
        "client holds (304 when it is still current).",
        "schema": {"type": "string"},
    },
    "Range": {
        "description": "One byte range, `bytes=<first>-<last>` or `bytes=-<suffix>` (206); several "
        "ranges get the whole file (200); an unsatisfiable one 416.",
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "description": "Makes a create or append safe to repeat: a repeat with the same key and body "
        "answers what the first request made (1 to 200 visible ASCII characters, scoped to the caller; "
        "a UUID). The same key with another body is 422 idempotency_key_reused.",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
    },
}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "The caller's X-Request-Id when it is a sane token, else a new one.",
        "schema": _TEXT,
    },
    "ETag": {"description": "The entity tag of the object (quoted).", "schema": _TEXT},
    "X-File-Version": {
        "description": "The file version answered (1, 2, ...).",
        "schema": {"type": "integer"},
    },
    "Content-Range": {
        "description": "`bytes <first>-<last>/<size>` (206) or `bytes */<size>` (416).",
        "schema": _TEXT,
    },
    "Content-Length": {
        "description": "Bytes of the body (of the GET answer for HEAD).",
        "schema": {"type": "integer"},
    },
    "Location": {"description": "The URL of what was created.", "schema": _TEXT},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": 'Always `Bearer error="invalid_token"`.', "schema": _TEXT},
    "Allow": {"description": "The methods the path answers.", "schema": _TEXT},
}
# Headers every answer of a status carries (besides X-Request-Id).
ERROR_HEADERS = {401: ("WWW-Authenticate",), 405: ("Allow",), 416: ("Content-Range",), 429: ("Retry-After",),
                  503: ("Retry-After",), 507: ("Retry-After",)}  # fmt: skip
# Tags are resources: the first segment after /api/v5, or a nested collection named here.
NESTED_TAGS = ("conversations", "messages", "files")
TAG_ALIASES = {"health": "platform", "openapi.json": "platform", "audit": "tenant"}
TAGS = {
    "platform": "Health and this document.",
    "auth": "Register, log in, refresh, log out; the public signing keys.",
    "users": "The caller's profile, password and login sessions.",
    "tenant": "The tenant: members, roles, invites and the audit log (owner/admin).",
    "sessions": "Workspace sessions: CRUD, fork, related.",
    "conversations": "AI conversations of a session.",
    "messages": "Messages of a conversation.",
    "settings": "The caller's settings (key → JSON value).",
    "files": "Session files: content, listing, move, mkdir, versions, restore, change feed.",
    "workspaces": "Workspaces: allocate, list, stop, relay tickets.",
}
