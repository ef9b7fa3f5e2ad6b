"""Sessions functions: sessions (CRUD, fork, related), conversations, messages, settings.

Design notes the OpenAPI summaries repeat: lists are most recently updated first (sessions),
creation order (conversations, forks) or commit order (messages), each with opaque cursors bound
to their listing; the rules of the area are in `coditect.sessions`.
"""

from coditect.registry.spec import FunctionSpec, Route

M = "coditect.sessions.models"
ID = "/api/v5/sessions/<uuid:id>"
CONV = "/api/v5/conversations/<uuid:id>"
# A 1 MiB message content JSON-escaped is at most 6 MiB (\u00XX for control characters), plus
# 16 KiB of metadata and the envelope: the service then enforces 1 MiB of UTF-8 content (413).
MESSAGE_MAX_BODY = 6 * 1024 * 1024 + 128 * 1024
_ETAG = ("ETag",)
# OpenAPI links from a created object to what it contains (parameter names as in the document).
_SID = "session_id"
_NEW_ID = "$response.body#/data/id"

FUNCTIONS = (
    FunctionSpec(
        name="sessions",
        description="Workspace sessions: CRUD, fork, related.",
        routes=(
            Route(
                "sessions.list",
                "GET",
                "/api/v5/sessions",
                summary=(
                    "The caller's sessions, most recently updated first. `archived=false` (default) "
                    "lists unarchived sessions, `true` only archived ones, `all` both."
                ),
                query=f"{M}:SessionListQuery",
                response=f"{M}:Session",
                paged=True,
            ),
            Route(
                "sessions.create",
                "POST",
                "/api/v5/sessions",
                status=201,
                summary="Create a session (name 1-200 characters, metadata a JSON object of at most 16 KiB)",
                body=f"{M}:SessionCreate",
                response=f"{M}:Session",
                response_headers=_ETAG,
                links=(
                    ("files", "files.list", ((_SID, _NEW_ID),)),
                    ("conversations", "conversations.list", ((_SID, _NEW_ID),)),
                    ("fork", "sessions.fork", ((_SID, _NEW_ID),)),
                ),
                idempotent=True,
            ),
            Route(
                "sessions.get",
                "GET",
                ID,
                summary="A session (with ETag); another user's or tenant's is 404",
                response=f"{M}:Session",
                response_headers=_ETAG,
            ),
            Route(
                "sessions.update",
                "PATCH",
                ID,
                summary="Change name, description, metadata or archived; If-Match (ETag) honoured",
                body=f"{M}:SessionPatch",
                response=f"{M}:Session",
                request_headers=("If-Match",),
                response_headers=_ETAG,
                errors=((412, "precondition_failed"),),
            ),
            Route(
                "sessions.delete",
                "DELETE",
                ID,
                status=204,
                summary=(
                    "Delete a session: it disappears at once; its conversations, messages, files and "
                    "workspace records are purged in bounded steps (finished by the ops gc job)"
                ),
            ),
            Route(
                "sessions.fork",
                "POST",
                f"{ID}/fork",
                status=201,
                summary=(
                    "Fork: a new session (parent_id = id) holding a copy of the conversations, messages "
                    "and files as they were when the fork started; independent afterwards"
                ),
                body=f"{M}:ForkBody",
                response=f"{M}:Session",
                response_headers=_ETAG,
                errors=((409, "conflict"),),
            ),
            Route(
                "sessions.related",
                "GET",
                f"{ID}/related",
                summary=(
                    "Parent (null when none or deleted), children (forks) and siblings (the parent's "
                    "other forks), oldest first. Each list is paged on its own: `limit` (1-200, default "
                    "50) applies to both, `children_cursor`/`siblings_cursor` continue one list, and "
                    "`children_next_cursor`/`siblings_next_cursor` are null on the last page"
                ),
                query=f"{M}:RelatedQuery",
                response=f"{M}:Related",
                errors=((400, "invalid_cursor"),),
            ),
        ),
    ),
    FunctionSpec(
        name="conversations",
        description="AI conversations of a session.",
        routes=(
            Route(
                "conversations.list",
                "GET",
                f"{ID}/conversations",
                summary="The session's conversations in creation order",
                query=f"{M}:PageQuery",
                response=f"{M}:Conversation",
                paged=True,
            ),
            Route(
                "conversations.create",
                "POST",
                f"{ID}/conversations",
                status=201,
                summary="Start a conversation (at most 1,000 per session: 409 above)",
                body=f"{M}:ConversationCreate",
                response=f"{M}:Conversation",
                links=(
                    ("messages", "messages.list", (("conversation_id", _NEW_ID),)),
                    ("append", "messages.append", (("conversation_id", _NEW_ID),)),
                ),
                errors=((409, "conflict"),),
                idempotent=True,
            ),
            Route("conversations.get", "GET", CONV, summary="A conversation", response=f"{M}:Conversation"),
            Route(
                "conversations.update",
                "PATCH",
                CONV,
                summary="Change title or agent",
                body=f"{M}:ConversationPatch",
                response=f"{M}:Conversation",
            ),
            Route(
                "conversations.delete",
                "DELETE",
                CONV,
                status=204,
                summary="Delete a conversation and its messages (409 fork_in_progress while its session is forked)",
                errors=((409, "fork_in_progress"),),
            ),
        ),
    ),
    FunctionSpec(
        name="messages",
        description="Messages of a conversation, in commit order.",
        routes=(
            Route(
                "messages.list",
                "GET",
                f"{CONV}/messages",
                summary="Messages in the order they were committed (cursor paging; seq increases)",
                query=f"{M}:PageQuery",
                response=f"{M}:Message",
                paged=True,
            ),
            Route(
                "messages.append",
                "POST",
                f"{CONV}/messages",
                status=201,
                summary=(
                    "Append a message; content at most 1 MiB of UTF-8 (413 content_too_large). `seq` is "
                    "the commit versionstamp as an integer: unique, increasing, not dense, may exceed 2^53"
                ),
                body=f"{M}:MessageCreate",
                response=f"{M}:Message",
                max_body=MESSAGE_MAX_BODY,
                errors=((413, "content_too_large"),),
                idempotent=True,
            ),
        ),
    ),
    FunctionSpec(
        name="settings",
        description="Per-user settings.",
        routes=(
            Route(
                "settings.list",
                "GET",
                "/api/v5/settings",
                summary="Every setting of the caller as one object (at most 100 keys; no tenant defaults)",
            ),
            Route(
                "settings.get",
                "GET",
                "/api/v5/settings/<key>",
                summary="One setting; key matches [a-z0-9._-]{1,128} (422 otherwise)",
                response=f"{M}:Setting",
                errors=((422, "validation_failed"),),
            ),
            Route(
                "settings.put",
                "PUT",
                "/api/v5/settings/<key>",
                summary="Set a setting: any JSON value of at most 64 KiB serialized (413 content_too_large)",
                body=f"{M}:SettingPut",
                response=f"{M}:Setting",
                errors=((409, "settings_limit"), (413, "content_too_large")),
            ),
            Route(
                "settings.delete",
                "DELETE",
                "/api/v5/settings/<key>",
                status=204,
                summary="Remove a setting (404 when it is not set; 422 for a key the rule refuses)",
                errors=((422, "validation_failed"),),
            ),
        ),
    ),
)
