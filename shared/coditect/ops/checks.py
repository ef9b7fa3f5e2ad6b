"""Record-level integrity checks of a restored store (a private SQLite file: no transactions, no
5 s limit), walking every key once in key order and dispatching on its tuple shape.

What is checked, per area, with that area's own codecs and key builders:

- identity: tenant, user, login-session and invite records decode; user ↔ email index (both
  ways: a user's email key points at it, and every email index entry points at a user with that
  email); login session ↔ by-user index (both ways).
- sessions: session records decode and have every index entry their table derives (by owner,
  by owner/archived, by parent); every by-owner/by-parent entry points at a live record;
  conversation records decode and have their `conv_ix` entry, every `conv_ix` entry points at its
  conversation; messages decode and belong to an existing conversation.
- files: entries and version records decode; each version's manifest exists and decodes, and
  every chunk the manifest lists exists; every stored chunk's SHA-256 is its key.
- workspaces: records decode.

Keys of other shapes are counted (`unchecked`), not judged. Problems are collected (first
`MAX_PROBLEMS` kept verbatim) with the key they concern, so a failure names its cause.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.files import chunks
from coditect.files.models import ENTRY, VERSION
from coditect.identity import repository as identity
from coditect.ops.archive import iter_sqlite_kv
from coditect.sessions import repository
from coditect.workspaces import repository as workspaces

MAX_PROBLEMS = 20


@dataclass
class Findings:
    checked: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    unchecked: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


class RecordChecker:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.found = Findings()
        self._manifests: dict[tuple[str, bytes], bool] = {}

    # -- raw access ------------------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def blob(self, key: bytes, stored: bytes) -> bytes:
        """The logical value of a repo.blobs value (inline or header + chunks)."""
        if stored[:1] == b"\x00":
            return stored[1:]
        if stored[:1] != b"\x01":
            raise ValueError(f"not a blob value (marker {stored[:1]!r})")
        total, count = struct.unpack(">QI", stored[1:13])
        rows = self.conn.execute(
            "SELECT value FROM kv WHERE key > ? AND key < ? ORDER BY key", (key + b"\x00", key + b"\xff")
        ).fetchall()
        data = b"".join(bytes(r[0])[1:] for r in rows)
        if len(rows) != count or len(data) != total:
            raise ValueError(
                f"blob chunks ({len(rows)}, {len(data)} bytes) do not match the header ({count}, {total})"
            )
        return data

    def record(self, key: bytes, decode: Callable[[bytes], Any]) -> Any:
        stored = self.get(key)
        return None if stored is None else decode(self.blob(key, stored))

    # -- the walk ----------------------------------------------------------------------------------
    def run(self) -> Findings:
        for key, value in iter_sqlite_kv(self.conn):
            try:
                parts = fdbtuple.unpack(key)
            except Exception:  # noqa: BLE001 — blob chunk keys of versionstamped values etc.
                self.found.unchecked += 1
                continue
            try:
                what = self.check(parts, key, value)
            except Exception as exc:  # noqa: BLE001 — any failure to decode is a finding
                self.found.problem(f"{_show(parts)}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if what:
                self.found.checked[what] += 1
            else:
                self.found.unchecked += 1
        return self.found

    def check(self, p: tuple[Any, ...], key: bytes, value: bytes) -> str | None:
        n = len(p)
        if p[:2] == ("g", "email") and n == 3:
            tid, uid = fdbtuple.unpack(value)
            user = self.record(keyspace.tenant(tid).sub(keyspace.USERS).key(uid), identity.USER_CODEC.decode)
            self.expect(user is not None and user.email_key == p[2], p, "email index entry without its user")
            return "email_index"
        if p[0] != "t" or n < 3:
            return None
        tid, area = p[1], p[2]
        t = keyspace.tenant(tid)
        if area == keyspace.TENANT_RECORD and n == 3:
            tenant = identity.TENANT_CODEC.decode(self.blob(key, value))
            self.expect(tenant.id == tid, p, "tenant record of another tenant id")
            return "tenants"
        if n < 4:
            return None
        if area == keyspace.USERS and n == 4:
            user = identity.USER_CODEC.decode(self.blob(key, value))
            owner = self.get(keyspace.EMAIL_INDEX.key(user.email_key))
            self.expect(owner == fdbtuple.pack((tid, user.id)), p, "user without its email index entry")
            return "users"
        if area == keyspace.AUTH_SESSIONS and n == 4:
            s = identity.SESSION_CODEC.decode(self.blob(key, value))
            ix = t.sub(keyspace.AUTH_SESSIONS_BY_USER).key(s.user_id, s.id)
            self.expect(self.get(ix) is not None, p, "login session without its by-user index entry")
            return "auth_sessions"
        if area == keyspace.AUTH_SESSIONS_BY_USER and n == 5:
            s = self.record(t.sub(keyspace.AUTH_SESSIONS).key(p[4]), identity.SESSION_CODEC.decode)
            self.expect(
                s is not None and s.user_id == p[3], p, "by-user index entry without its login session"
            )
            return "auth_sessions_by_user"
        if area == keyspace.INVITES and n == 4:
            identity.INVITE_CODEC.decode(self.blob(key, value))
            return "invites"
        if area == keyspace.SESSIONS:
            return self.session_part(tid, p, key, value)
        if area in (
            keyspace.SESSIONS_BY_OWNER,
            keyspace.SESSIONS_BY_OWNER_ARCHIVED,
            keyspace.SESSIONS_BY_PARENT,
        ):
            sid = p[-2]
            rec = self.record(keyspace.session(tid, sid).key(repository.REC), repository.SESSION_CODEC.decode)
            self.expect(
                rec is not None and rec.state == "live", p, "session index entry without a live session"
            )
            return str(area)
        if area == keyspace.CONVERSATION_INDEX and n == 4:
            target = fdbtuple.unpack(value)
            conv = self.record(t.sub(keyspace.SESSIONS).key(*target), repository.CONVERSATION_CODEC.decode)
            self.expect(conv is not None and conv.id == p[3], p, "conv_ix entry without its conversation")
            return "conv_ix"
        if area == keyspace.FILE_CHUNKS and n == 4:
            self.expect(
                hashlib.sha256(value).digest() == p[3], p, "file chunk content does not match its SHA-256"
            )
            return "file_chunks"
        if area == keyspace.FILE_MANIFESTS and n == 4:
            chunks.Manifest.decode(self.blob(key, value))
            return "file_manifests"
        if area == keyspace.WORKSPACES and n == 5 and p[3] == "rec":
            workspaces.CODEC.decode(self.blob(key, value))
            return "workspaces"
        return None

    def orphaned_fork(self, tid: str, index: str, rec: Any) -> bool:
        """A fork whose parent was deleted keeps `parent_id` in its record, but the parent's purge
        cleared the by-parent entries under it (coditect.sessions.purge): not a problem."""
        if index != "parent" or not rec.parent_id:
            return False
        parent = self.record(
            keyspace.session(tid, rec.parent_id).key(repository.REC), repository.SESSION_CODEC.decode
        )
        return parent is None or parent.state != "live"

    def session_part(self, tid: str, p: tuple[Any, ...], key: bytes, value: bytes) -> str | None:
        n, sid = len(p), p[3]
        kind = p[4] if n > 4 else None
        if kind == repository.REC and n == 5:
            rec = repository.SESSION_CODEC.decode(self.blob(key, value))
            for ix in repository.sessions(tid).indexes.values():
                entry = ix.entry((sid, repository.REC), rec)
                self.expect(
                    entry is None or self.get(entry) is not None or self.orphaned_fork(tid, ix.name, rec),
                    p,
                    f"session without its {ix.name} index entry",
                )
            return "sessions"
        if kind == repository.CONV and n == 6:
            conv = repository.CONVERSATION_CODEC.decode(self.blob(key, value))
            entry_value = self.get(keyspace.tenant(tid).sub(keyspace.CONVERSATION_INDEX).key(conv.id))
            self.expect(
                entry_value == fdbtuple.pack((sid, repository.CONV, conv.id)),
                p,
                "conversation without its conv_ix entry",
            )
            return "conversations"
        if kind == repository.MSG and n == 7:
            repository.MESSAGE_CODEC.decode(self.blob(key, value))
            stored = self.get(keyspace.session(tid, sid).key(repository.CONV, p[5]))
            self.expect(stored is not None, p, "message of a conversation that does not exist")
            return "messages"
        if kind == "files" and n == 8 and p[5] == "e":
            ENTRY.decode(value)
            return "file_entries"
        if kind == "files" and n == 8 and p[5] == "v":
            version = VERSION.decode(value)
            self.expect(self.manifest_ok(tid, bytes.fromhex(version.sha256)), p,
                        "file version whose manifest or one of its chunks is missing")  # fmt: skip
            return "file_versions"
        return None

    def manifest_ok(self, tid: str, sha: bytes) -> bool:
        cached = self._manifests.get((tid, sha))
        if cached is not None:
            return cached
        stored = self.get(chunks.manifest_key(tid, sha))
        ok = stored is not None
        if stored is not None:
            manifest = chunks.Manifest.decode(self.blob(chunks.manifest_key(tid, sha), stored))
            ok = all(self.get(chunks.chunk_key(tid, h)) is not None for h in manifest.hashes)
        self._manifests[(tid, sha)] = ok
        return ok

    def expect(self, ok: bool, p: tuple[Any, ...], what: str) -> None:
        if not ok:
            self.found.problem(f"{_show(p)}: {what}")


def _show(p: tuple[Any, ...]) -> str:
    text = repr(p)
    return text if len(text) <= 160 else text[:157] + "..."
