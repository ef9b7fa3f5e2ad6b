"""The directory tree of one session: entries keyed by their parent directory's id.

Layout under `keyspace.session(tid, sid).sub("files")`:

    ("e", dir_id, name)       → Entry (file or directory); the root directory's id is "root"
    ("v", file_id, version)   → VersionRecord
    ("c", versionstamp)       → change-feed entry (see `changes`)
    ("head",)                 → change counter, bumped with every change (long-poll watch key)
    ("trash", dir_id)         → a detached directory whose contents are still being released

Why entries are keyed by the parent's *id* rather than by full path: moving or renaming a
directory moves exactly one entry (one key cleared, one set) in one transaction, however many
files lie below it — readers resolve paths through the ids, so they see the whole subtree at its
old place or at its new one, never a mix. Recursive delete is the same trick: the directory's
entry is detached atomically and its contents released in bounded steps from the trash.
The price is a lookup per path segment (D point reads for a path of depth D).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from coditect import keyspace
from coditect.errors import Conflict, NotFound
from coditect.files.models import ENTRY, VERSION, Entry, VersionRecord
from coditect.files.paths import FilePath
from coditect.store import Transaction

ROOT_ID = "root"
AREA = "files"
Guard = Callable[[Transaction], None]


def not_a_directory() -> Conflict:
    return Conflict("A parent of this path is a file.", code="not_a_directory")


def is_a_directory() -> Conflict:
    return Conflict("The path is a directory.", code="is_a_directory")


@dataclass(frozen=True)
class FileSpace:
    """One session's files. `guard(tr)` runs first in every transaction touching them (the
    session-ownership check of the HTTP path: 404 for another user's or tenant's session)."""

    tenant_id: str
    session_id: str
    guard: Guard | None = field(default=None, compare=False)

    @property
    def space(self) -> keyspace.Subspace:
        return keyspace.session(self.tenant_id, self.session_id).sub(AREA)

    def check(self, tr: Transaction) -> None:
        if self.guard is not None:
            self.guard(tr)

    def entry_key(self, dir_id: str, name: str) -> bytes:
        return self.space.key("e", dir_id, name)

    def entries_range(self, dir_id: str) -> tuple[bytes, bytes]:
        return self.space.range("e", dir_id)

    def version_key(self, file_id: str, version: int) -> bytes:
        return self.space.key("v", file_id, version)

    def versions_range(self, file_id: str) -> tuple[bytes, bytes]:
        return self.space.range("v", file_id)

    def trash_key(self, dir_id: str) -> bytes:
        return self.space.key("trash", dir_id)

    def detached_keys(self, dir_id: str) -> tuple[bytes, bytes]:
        """A detached directory's marks: in the session's trash (what `drain_trash` releases) and
        in the GC's index (where GC finds every session's)."""
        return self.trash_key(dir_id), keyspace.FILES_GC.key("trash", self.tenant_id, self.session_id, dir_id)

    def mark_detached(self, tr: Transaction, dir_id: str) -> None:
        for key in self.detached_keys(dir_id):
            tr.set(key, b"")

    def unmark_detached(self, tr: Transaction, dir_id: str) -> None:
        for key in self.detached_keys(dir_id):
            tr.clear(key)


# -- entries -------------------------------------------------------------------------------
def get_entry(tr: Transaction, fs: FileSpace, dir_id: str, name: str) -> Entry | None:
    value = tr.get(fs.entry_key(dir_id, name))
    return None if value is None else ENTRY.decode(value)


def put_entry(tr: Transaction, fs: FileSpace, dir_id: str, name: str, entry: Entry) -> None:
    tr.set(fs.entry_key(dir_id, name), ENTRY.encode(entry))


def clear_entry(tr: Transaction, fs: FileSpace, dir_id: str, name: str) -> None:
    tr.clear(fs.entry_key(dir_id, name))


def has_children(tr: Transaction, fs: FileSpace, dir_id: str) -> bool:
    return bool(tr.get_range(*fs.entries_range(dir_id), limit=1))


def children(
    tr: Transaction, fs: FileSpace, dir_id: str, *, after: str | None = None, limit: int = 0
) -> list[tuple[str, Entry]]:
    """`(name, entry)` of a directory's children in name order (UTF-8 byte order)."""
    begin, end = fs.entries_range(dir_id)
    if after is not None:
        begin = fs.entry_key(dir_id, after) + b"\x00"
    return [
        (fs.space.unpack(key)[2], ENTRY.decode(value)) for key, value in tr.get_range(begin, end, limit=limit)
    ]


@dataclass(frozen=True)
class Located:
    """Where a path lives: its parent directory's id and its entry (None when absent)."""

    parent_id: str
    entry: Entry | None


def locate(tr: Transaction, fs: FileSpace, path: FilePath) -> Located:
    """Resolve `path`; NotFound when a parent directory is missing or is a file."""
    if path.is_root:
        raise NotFound()
    parent = ROOT_ID
    for segment in path.segments[:-1]:
        entry = get_entry(tr, fs, parent, segment)
        if entry is None or entry.type != "directory":
            raise NotFound()
        parent = entry.id
    return Located(parent, get_entry(tr, fs, parent, path.name))


def directory_id(tr: Transaction, fs: FileSpace, path: FilePath) -> str | None:
    """The id of directory `path` (root included), or None when it is missing or not a directory."""
    if path.is_root:
        return ROOT_ID
    try:
        found = locate(tr, fs, path)
    except NotFound:
        return None
    return found.entry.id if found.entry is not None and found.entry.type == "directory" else None


def ensure_directories(
    tr: Transaction,
    fs: FileSpace,
    path: FilePath,
    new_ids: Iterator[str],
    now: datetime,
    on_create: Callable[[FilePath], None],
) -> str:
    """The id of directory `path`, creating it and missing parents (ids from `new_ids`, which
    the caller generated outside the retry loop). 409 not_a_directory when a file is in the way."""
    parent = ROOT_ID
    for depth, segment in enumerate(path.segments, start=1):
        entry = get_entry(tr, fs, parent, segment)
        if entry is None:
            entry = Entry(id=next(new_ids), type="directory", created_at=now, updated_at=now)
            put_entry(tr, fs, parent, segment, entry)
            on_create(FilePath(path.segments[:depth]))
        elif entry.type != "directory":
            raise not_a_directory()
        parent = entry.id
    return parent


# -- versions -----------------------------------------------------------------------------
def get_version(tr: Transaction, fs: FileSpace, file_id: str, version: int) -> VersionRecord | None:
    value = tr.get(fs.version_key(file_id, version))
    return None if value is None else VERSION.decode(value)


def put_version(tr: Transaction, fs: FileSpace, file_id: str, record: VersionRecord) -> None:
    tr.set(fs.version_key(file_id, record.version), VERSION.encode(record))


def versions(
    tr: Transaction, fs: FileSpace, file_id: str, *, limit: int = 0, before: int | None = None
) -> list[VersionRecord]:
    """A file's versions, newest first (strictly older than `before` when given)."""
    begin, end = fs.versions_range(file_id)
    if before is not None:
        end = fs.version_key(file_id, before)
    return [VERSION.decode(value) for _, value in tr.get_range(begin, end, limit=limit, reverse=True)]


def parent_id_of(tr: Transaction, fs: FileSpace, path: FilePath) -> str | None:
    """The id of `path`'s parent directory; None when some parent is missing (a write would
    create it); 409 not_a_directory when a file is in the way."""
    parent = ROOT_ID
    for segment in path.segments[:-1]:
        entry = get_entry(tr, fs, parent, segment)
        if entry is None:
            return None
        if entry.type != "directory":
            raise not_a_directory()
        parent = entry.id
    return parent
