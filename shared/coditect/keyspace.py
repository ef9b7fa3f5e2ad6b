"""The key schema: every subspace of the store is named here, and only here.

Keys are tuple-encoded with `fdb.tuple` (pure Python, no libfdb_c needed), never concatenated
strings: `("t", "acme")` is not a prefix of `("t", "acme2")`, while `b"t/acme"` is of `b"t/acme2"`.
Two roots:

- `("t", tenant_id, ...)` — everything owned by one tenant. Only `tenant(tenant_id)` builds it,
  and it insists on a canonical UUID string, so a name typed by a user can never become a prefix.
- `("g", ...)` — global data that belongs to no tenant (uniqueness across tenants, dedupe, ops).

| subspace                 | key tuple (after the prefix)        | value                               |
|--------------------------|-------------------------------------|-------------------------------------|
| `tenant(tid)`            | `("t", tid, ...)`                   | the tenant's own subspaces below    |
| `PROBE`                  | `("g", "probe")`                    | health-check write/read probe       |
| `DEDUPE`                 | `("g", "dedupe", source, id)`       | CloudEvent `(source, id)` seen once |
| `OUTBOX`                 | `("g", "outbox", time_ns, id)`      | CloudEvent to publish after commit  |
| `THROTTLE`               | `("g", "throttle", bucket, ...)`    | rate-limit counters (8-byte LE)     |
| `EMAIL_INDEX`            | `("g", "email", normalised_email)`  | unique index email → user / tenant  |
| `TOKEN_DIGESTS`          | `("g", "token", kind, digest)`      | token digest → owner lookup         |
| `OPS`                    | `("g", "ops", ...)`                 | operational markers (backups, jobs) |
| `PURGE_QUEUE` "purge"    | `("g", "purge", due_us, tid, sid)`  | sessions waiting to be purged       |
| `WORKSPACE_INDEX`        | `("g", "workspaces", kind, ...)`    | live workspace → tenant; expiries   |
| `FILES_GC`               | `("g", "files_gc", kind, tid, ...)` | files GC work: uploads, candidates  |

Per-tenant subspaces are built from `tenant(tid)` with the names in `TENANT_SUBSPACES`
(`tenant(tid).sub(USERS)` → `("t", tid, "users", ...)`):

| name                     | key tuple under `("t", tid)`        | value                               |
|--------------------------|-------------------------------------|-------------------------------------|
| `TENANT_RECORD` "tenant" | `("tenant",)`                       | the tenant record                   |
| `USERS` "users"          | `("users", user_id)`                | user records                        |
| `AUDIT` "audit"          | `("audit", versionstamp)`           | audit events, commit-ordered        |
| `COUNTERS` "counters"    | `("counters", name)`                | per-tenant counters (8-byte LE)     |
| `AUTH_SESSIONS` "auth_sessions" | `("auth_sessions", sid)`     | login sessions (refresh families)   |
| `AUTH_SESSIONS_BY_USER` "auth_sessions_by_user" | `(.., user_id, sid)` | index: a user's login sessions |
| `LIVE_SESSIONS` "live"   | `("live", sid)`                     | pack((user_id, role)) while usable  |
| `INVITES` "invites"      | `("invites", invite_id)`            | invite records (token as digest)    |
| `WORKSPACES` "workspaces"| `("workspaces", kind, ...)`         | workspace records and indexes       |
| `SESSIONS` "s"           | `("s", sid, ...)` = `session(tid, sid)` | EVERYTHING scoped to one workspace session (below) |
| `SESSIONS_BY_OWNER` "s_by_owner" | `(owner, updated_us, sid, "rec")` | index: live sessions, newest last |
| `SESSIONS_BY_OWNER_ARCHIVED` "s_by_owner_arch" | `(owner, archived, updated_us, sid, "rec")` | same, split by `archived` |
| `SESSIONS_BY_PARENT` "s_by_parent" | `(parent_sid, created_us, sid, "rec")` | index: live forks of a session |
| `CONVERSATION_INDEX` "conv_ix" | `(cid,)`                      | pack((sid, "conv", cid)): where a conversation lives |
| `SETTINGS` "settings"    | `("settings", user_id, key)`        | per-user settings                   |
| `IDEMPOTENCY` "idem"     | `("idem", user_id, op, scope, key)` | Idempotency-Key → created id (session creates) |
| `FILE_CHUNKS` "fchunks"  | `("fchunks", sha256)`               | file content chunk (≤ 64 KiB)       |
| `FILE_CHUNK_REFS` "fchunkrefs" | `("fchunkrefs", sha256)`      | chunk reference count (8-byte LE)   |
| `FILE_MANIFESTS` "fmanifests" | `("fmanifests", sha256)`       | file content → its chunk list (blob) |
| `FILE_MANIFEST_REFS` "fmanifestrefs" | `("fmanifestrefs", sha256)` | versions referencing it (8-byte LE) |
| `FILE_UPLOADS` "fuploads" | `("fuploads", upload_id, ...)`     | staged upload record + staged chunks |

Session-scoped data (the rule every area follows): everything that belongs to one workspace
session lives under ONE subspace, `session(tid, sid)` = `("t", tid, "s", sid, ...)`, so deleting
a session is clearing one prefix (in bounded, resumable steps: `coditect.sessions.purge`).
Parts used under it: `"rec"` the session record, `"conv"`/`"count"`/`"msg"`/`"msgid"`
conversations and messages, `"fork"`/`"forking"` staged-fork state, `"files"` the files area,
`"ws"` the workspaces area, `"idem"` the Idempotency-Key records of creates inside the session
(conversations, messages: `coditect.idempotency`). Data an area keeps OUTSIDE it (global indexes) is cleared by the
purge hook that area registers (`coditect.sessions.hooks`).

Adding a subspace: one line in the right block below with a comment saying what lives there,
plus one row in the matching table above. Names must be unique within their block (a test
checks it).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import fdb.tuple as fdbtuple

__all__ = [
    "AUDIT",
    "AUTH_SESSIONS",
    "AUTH_SESSIONS_BY_USER",
    "CONVERSATION_INDEX",
    "COUNTERS",
    "DEDUPE",
    "EMAIL_INDEX",
    "FILES_GC",
    "FILE_CHUNKS",
    "FILE_CHUNK_REFS",
    "FILE_MANIFESTS",
    "FILE_MANIFEST_REFS",
    "FILE_UPLOADS",
    "GLOBAL",
    "GLOBAL_SUBSPACES",
    "IDEMPOTENCY",
    "INVITES",
    "LIVE_SESSIONS",
    "OPS",
    "OUTBOX",
    "PROBE",
    "PURGE_QUEUE",
    "SESSIONS",
    "SESSIONS_BY_OWNER",
    "SESSIONS_BY_OWNER_ARCHIVED",
    "SESSIONS_BY_PARENT",
    "SETTINGS",
    "TENANT_RECORD",
    "TENANT_ROOT",
    "TENANT_SUBSPACES",
    "THROTTLE",
    "TOKEN_DIGESTS",
    "USERS",
    "WORKSPACES",
    "WORKSPACE_INDEX",
    "Subspace",
    "dedupe_key",
    "session",
    "tenant",
    "tenant_id_of",
]


class Subspace:
    """A tuple prefix: keys inside it are `pack(prefix + parts)`."""

    __slots__ = ("_packed", "prefix")

    def __init__(self, prefix: tuple[Any, ...]) -> None:
        self.prefix = tuple(prefix)
        self._packed: bytes = fdbtuple.pack(self.prefix)

    @property
    def raw_prefix(self) -> bytes:
        """The packed prefix; every key of the subspace starts with it."""
        return self._packed

    def key(self, *parts: Any) -> bytes:
        """The key for `prefix + parts`."""
        packed: bytes = fdbtuple.pack(parts)
        return self._packed + packed

    def unpack(self, key: bytes) -> tuple[Any, ...]:
        """The parts of `key` after the prefix; ValueError when the key is not in this subspace."""
        if key not in self:
            raise ValueError(f"key {key!r} is not in subspace {self.prefix!r}")
        result: tuple[Any, ...] = fdbtuple.unpack(key[len(self._packed) :])
        return result

    def range(self, *parts: Any) -> tuple[bytes, bytes]:
        """`[begin, end)` of every key strictly under `prefix + parts` (not the key itself).

        Like `fdb.tuple.range`: begin = packed + 0x00, end = packed + 0xff, so the sibling
        `("a", "b1")` is outside `range("a", "b")` even though its packed form shares bytes.
        """
        packed = self.key(*parts)
        return packed + b"\x00", packed + b"\xff"

    def sub(self, *parts: Any) -> Subspace:
        """The nested subspace `prefix + parts`."""
        # pack(a + b) == pack(a) + pack(b) for top-level elements: only `parts` is packed.
        child = Subspace.__new__(Subspace)
        child.prefix, child._packed = self.prefix + parts, self._packed + fdbtuple.pack(parts)
        return child

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key.startswith(self._packed) and len(key) > len(self._packed)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Subspace) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)

    def __repr__(self) -> str:
        return f"Subspace({self.prefix!r})"


# -- roots -----------------------------------------------------------------------------------
TENANT_ROOT = Subspace(("t",))  # ("t", tenant_id, ...): all tenant-owned data
GLOBAL = Subspace(("g",))  # ("g", ...): data belonging to no tenant

# -- global subspaces: one line each --------------------------------------------------------
PROBE = GLOBAL.sub("probe")  # health check: the probe key written and read back
DEDUPE = GLOBAL.sub("dedupe")  # (source, id) of CloudEvents already handled
OUTBOX = GLOBAL.sub("outbox")  # (time_ns, event id) → CloudEvent recorded in a transaction, not yet published
THROTTLE = GLOBAL.sub("throttle")  # (bucket, subject...) → rate-limit counters
EMAIL_INDEX = GLOBAL.sub("email")  # (normalised email,) → user id: unique across tenants
TOKEN_DIGESTS = GLOBAL.sub("token")  # (kind, digest) → owner of a refresh/reset/ticket token
OPS = GLOBAL.sub("ops")  # (job, ...) → operational markers: backups, reconciles, migrations
PURGE_QUEUE = GLOBAL.sub("purge")  # (due_us, tid, sid) → kind: sessions to purge (coditect.sessions.purge)
WORKSPACE_INDEX = GLOBAL.sub("workspaces")  # (kind, ...) → live workspace → tenant, ticket expiries
FILES_GC = GLOBAL.sub("files_gc")  # (kind, tid, ...) → files GC work list (coditect.files.gc)

GLOBAL_SUBSPACES: dict[str, Subspace] = {
    "probe": PROBE,
    "dedupe": DEDUPE,
    "outbox": OUTBOX,
    "throttle": THROTTLE,
    "email": EMAIL_INDEX,
    "token": TOKEN_DIGESTS,
    "ops": OPS,
    "purge": PURGE_QUEUE,
    "workspaces": WORKSPACE_INDEX,
    "files_gc": FILES_GC,
}

# -- per-tenant subspace names: one line each (use as tenant(tid).sub(NAME)) ------------------
TENANT_RECORD = "tenant"  # ("tenant",) → the tenant record itself
USERS = "users"  # ("users", user_id) → user records
AUDIT = "audit"  # ("audit", versionstamp) → audit events in commit order
COUNTERS = "counters"  # ("counters", name) → per-tenant counters (8-byte LE)
AUTH_SESSIONS = "auth_sessions"  # ("auth_sessions", sid) → login session = one refresh-token family
AUTH_SESSIONS_BY_USER = "auth_sessions_by_user"  # (.., user_id, sid) → b"": a user's login sessions
LIVE_SESSIONS = "live"  # ("live", sid) → pack((user_id, role)); present only while the sid is usable
INVITES = "invites"  # ("invites", invite_id) → invite record (the token itself only as a digest)
WORKSPACES = "workspaces"  # ("workspaces", kind, ...) → workspace records + indexes (workspaces.repository)
SESSIONS = "s"  # ("s", sid, ...) → everything scoped to one workspace session: use session(tid, sid)
SESSIONS_BY_OWNER = "s_by_owner"  # (owner, updated_us, sid, "rec") → b"": live sessions by recency
SESSIONS_BY_OWNER_ARCHIVED = "s_by_owner_arch"  # (owner, archived, updated_us, sid, "rec") → b""
SESSIONS_BY_PARENT = "s_by_parent"  # (parent_sid, created_us, sid, "rec") → b"": live forks
CONVERSATION_INDEX = "conv_ix"  # (cid,) → pack((sid, "conv", cid)): conversation id → its session
SETTINGS = "settings"  # (user_id, key) → per-user setting record
IDEMPOTENCY = "idem"  # (user_id, op, scope, key) → the id a create with this Idempotency-Key made
FILE_CHUNKS = "fchunks"  # (sha256,) → one content chunk, shared by every file of the tenant using it
FILE_CHUNK_REFS = "fchunkrefs"  # (sha256,) → references to the chunk (manifests + staged uploads)
FILE_MANIFESTS = "fmanifests"  # (sha256 of a whole file,) → its chunk list (repo.blobs)
FILE_MANIFEST_REFS = "fmanifestrefs"  # (sha256 of a whole file,) → file versions referencing it
FILE_UPLOADS = "fuploads"  # (upload_id,) → staged upload; (upload_id, i) → its i-th staged chunk

TENANT_SUBSPACES: tuple[str, ...] = (
    TENANT_RECORD,
    USERS,
    AUDIT,
    COUNTERS,
    AUTH_SESSIONS,
    AUTH_SESSIONS_BY_USER,
    LIVE_SESSIONS,
    INVITES,
    WORKSPACES,
    SESSIONS,
    SESSIONS_BY_OWNER,
    SESSIONS_BY_OWNER_ARCHIVED,
    SESSIONS_BY_PARENT,
    CONVERSATION_INDEX,
    SETTINGS,
    IDEMPOTENCY,
    FILE_CHUNKS,
    FILE_CHUNK_REFS,
    FILE_MANIFESTS,
    FILE_MANIFEST_REFS,
    FILE_UPLOADS,
)


def tenant(tenant_id: str) -> Subspace:
    """The subspace `("t", tenant_id)`; `tenant_id` must be a canonical (lowercase) UUID string."""
    if not isinstance(tenant_id, str):
        raise ValueError(f"tenant id must be a UUID string, not {type(tenant_id).__name__}")
    return _tenant(tenant_id)


@functools.lru_cache(maxsize=4096)  # called several times per request: check and pack once per tenant
def _tenant(tenant_id: str) -> Subspace:
    try:
        canonical = str(uuid.UUID(tenant_id))
    except ValueError:
        raise ValueError(f"tenant id is not a UUID: {tenant_id!r}") from None
    if canonical != tenant_id:
        raise ValueError(f"tenant id must be in canonical form {canonical!r}, not {tenant_id!r}")
    return TENANT_ROOT.sub(tenant_id)


@functools.lru_cache(maxsize=4096)  # ~10 times per file write: validate and pack once per session
def session(tenant_id: str, session_id: str) -> Subspace:
    """`("t", tid, "s", sid)`: the ONE subspace holding everything scoped to a workspace session.

    Areas put their session data under `session(tid, sid).sub("<area>", ...)`; deleting the
    session clears this prefix. `session_id` must be a canonical UUID string, like `tenant_id`.
    """
    try:
        canonical = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"session id is not a UUID: {session_id!r}") from None
    if canonical != session_id:
        raise ValueError(f"session id must be in canonical form {canonical!r}, not {session_id!r}")
    return tenant(tenant_id).sub(SESSIONS, session_id)


def tenant_id_of(key: bytes) -> str | None:
    """The tenant id a key belongs to, or None for a global key (used by the inspection CLI)."""
    if key not in TENANT_ROOT:
        return None
    parts = TENANT_ROOT.unpack(key)
    return parts[0] if parts and isinstance(parts[0], str) else None


def dedupe_key(source: str, event_id: str) -> bytes:
    """The dedupe marker of a CloudEvent: handled once per `(source, id)`."""
    return DEDUPE.key(source, event_id)
