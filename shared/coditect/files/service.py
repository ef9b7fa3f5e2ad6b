"""The file store of one session: read, list, mkdir, move, delete, versions, restore.

Writes of content are in `upload` (streamed, staged, published by one flip). Every function
here takes a `FileSpace` (a session's files plus the ownership guard the HTTP layer adds) and
ids/times generated outside the retry loop, so transaction bodies can run twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from coditect.errors import BadRequest, Conflict, NotFound
from coditect.files import chunks, quota
from coditect.files.changes import ChangeLog
from coditect.files.models import VERSION, Entry, FileInfo, VersionInfo, VersionRecord
from coditect.files.paths import FilePath
from coditect.files.quota import Policy
from coditect.files.tree import (
    ROOT_ID,
    FileSpace,
    children,
    clear_entry,
    directory_id,
    ensure_directories,
    get_entry,
    get_version,
    has_children,
    is_a_directory,
    locate,
    not_a_directory,
    put_entry,
)
from coditect.files.versions import NO_CONDITIONS, Preconditions, commit_version, release_file
from coditect.repo.cursor import decode_cursor, encode_cursor, paginate
from coditect.store import Database, Transaction, transactional

# Chunks fetched per read transaction while streaming (8 MiB at most, like an upload's two groups).
# Big batches because chunk keys are hashes: reading a batch in key order costs about half of
# reading it in file order on SQLite (B-tree locality), and the bigger the batch the more of that
# order there is (16 MiB: 32 per batch → ~0.45x raw sequential reads, 128 → ~0.7x).
READ_BATCH = 128
TRASH_STEP = 200  # entries released per trash transaction


# -- reading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readable:
    """A file version ready to stream: its entry, version record and manifest."""

    entry: Entry
    record: VersionRecord
    manifest: chunks.Manifest


def _locate_file(tr: Transaction, fs: FileSpace, path: FilePath) -> tuple[str, Entry]:
    """The parent directory's id and the entry of the file at `path` (404 when absent, 409 for
    a directory), after the session check."""
    fs.check(tr)
    found = locate(tr, fs, path)
    if found.entry is None:
        raise NotFound()
    if found.entry.type == "directory":
        raise is_a_directory()
    return found.parent_id, found.entry


def _open(tr: Transaction, fs: FileSpace, path: FilePath, version: int | None) -> Readable:
    _, entry = _locate_file(tr, fs, path)
    record = get_version(tr, fs, entry.id, version or entry.version)
    if record is None:
        raise NotFound("No such version of this file.")
    manifest = chunks.read_manifest(tr, fs.tenant_id, bytes.fromhex(record.sha256))
    if manifest is None:
        raise RuntimeError("a file version's manifest is missing")
    return Readable(entry, record, manifest)


def open_file(db: Database, fs: FileSpace, path: FilePath, version: int | None = None) -> Readable:
    return db.transact(_open, fs, path, version)


def _read_chunks(tr: Transaction, tenant_id: str, hashes: tuple[bytes, ...]) -> list[bytes | None]:
    # Chunk keys are hashes, i.e. random: reading a batch in key order gives the store's B-tree
    # locality (see READ_BATCH); the answer keeps the file's order.
    found = {h: chunks.read_chunk(tr, tenant_id, h) for h in sorted(set(hashes))}
    return [found[h] for h in hashes]


def iter_content(
    db: Database, tenant_id: str, manifest: chunks.Manifest, start: int, stop: int
) -> Iterator[bytes]:
    """Bytes [start, stop) of the content, one chunk at a time, READ_BATCH chunks per transaction.

    Chunks are immutable and referenced by the version being read; should GC take one anyway
    (the version was dropped and `files_gc_grace_seconds` passed mid-stream) the stream stops
    with an error rather than send wrong bytes.
    """
    if stop <= start:
        return
    first, last = start // manifest.chunk_size, (stop - 1) // manifest.chunk_size
    index = first
    while index <= last:
        wanted = manifest.hashes[index : min(last + 1, index + READ_BATCH)]
        got = db.transact(_read_chunks, tenant_id, wanted)
        for data in got:
            if data is None:
                raise RuntimeError("a referenced chunk is missing")
            base = index * manifest.chunk_size
            yield data[max(start - base, 0) : min(stop - base, len(data))]
            index += 1


# -- listing ---------------------------------------------------------------------------------
def _walk(
    tr: Transaction,
    fs: FileSpace,
    dir_id: str,
    base: FilePath,
    resume: tuple[str, ...],
    recursive: bool,
    out: list[tuple[FilePath, Entry]],
    want: int,
) -> None:
    after = None
    if resume:
        after = resume[0]
        if recursive:  # `after` was listed; its subtree may not have been (or only in part)
            entry = get_entry(tr, fs, dir_id, after)
            if entry is not None and entry.type == "directory":
                _walk(tr, fs, entry.id, base.child(after), resume[1:], recursive, out, want)
    while len(out) < want:
        batch = children(tr, fs, dir_id, after=after, limit=min(want - len(out), 500))
        for name, entry in batch:
            out.append((base.child(name), entry))
            if recursive and entry.type == "directory" and len(out) < want:
                _walk(tr, fs, entry.id, base.child(name), (), recursive, out, want)
            if len(out) >= want:
                return
        if not batch:
            return
        after = batch[-1][0]


def _list(
    tr: Transaction, fs: FileSpace, prefix: FilePath, recursive: bool, limit: int, cursor: str | None
) -> tuple[list[FileInfo], str | None]:
    fs.check(tr)
    if not prefix.is_root:
        entry = locate(tr, fs, prefix).entry
        if entry is None:
            raise NotFound()
        if entry.type == "file":
            return [FileInfo.of(prefix.text, entry)], None
    dir_id = directory_id(tr, fs, prefix)
    assert dir_id is not None
    query = f"files.list:{int(recursive)}:{prefix.text}"
    begin, end = fs.space.range("l")
    resume: tuple[str, ...] = ()
    if cursor:  # "" (an empty `?cursor=`) is the first page, as None
        resume = tuple(fs.space.unpack(decode_cursor(query, begin, end, cursor))[1:])
    out: list[tuple[FilePath, Entry]] = []
    _walk(tr, fs, dir_id, prefix, resume, recursive, out, limit + 1)
    next_cursor = None
    if len(out) > limit:
        out = out[:limit]
        rel = out[-1][0].segments[len(prefix.segments) :]
        next_cursor = encode_cursor(query, begin, end, fs.space.key("l", *rel))
    return [FileInfo.of(p.text, e) for p, e in out], next_cursor


def list_files(
    db: Database, fs: FileSpace, prefix: FilePath, *, recursive: bool, limit: int, cursor: str | None
) -> tuple[list[FileInfo], str | None]:
    """Entries under directory `prefix` (root: empty), name order, depth-first when recursive.
    A page is one transaction (one consistent view); a file as prefix lists that file."""
    return db.transact(_list, fs, prefix, recursive, limit, cursor)


# -- directories -------------------------------------------------------------------------------
def _mkdir(tr: Transaction, fs: FileSpace, path: FilePath, ids: list[str], now: datetime) -> FileInfo:
    fs.check(tr)
    log = ChangeLog(tr, fs)
    parent = ensure_directories(
        tr, fs, path.parent, iter(ids[1:]), now, lambda p: log.add(p, "created", None)
    )
    existing = get_entry(tr, fs, parent, path.name)
    if existing is not None:
        if existing.type == "directory":
            return FileInfo.of(path.text, existing)  # mkdir -p: an existing directory is fine
        raise Conflict("A file exists at this path.", code="already_exists")
    entry = Entry(id=ids[0], type="directory", created_at=now, updated_at=now)
    put_entry(tr, fs, parent, path.name, entry)
    log.add(path, "created", None)
    return FileInfo.of(path.text, entry)


def mkdir(db: Database, fs: FileSpace, path: FilePath, ids: list[str], now: datetime) -> FileInfo:
    """Create directory `path` and missing parents; an existing directory is returned as is."""
    return db.transact(_mkdir, fs, path, ids, now)


# -- move --------------------------------------------------------------------------------------
@transactional
def move(
    tr: Transaction,
    fs: FileSpace,
    src: FilePath,
    dst: FilePath,
    *,
    overwrite: bool,
    ids: list[str],
    now: datetime,
) -> FileInfo:
    """Move/rename a file or a whole directory in one transaction (one entry moves)."""
    if src.is_root or dst.is_root:
        raise BadRequest("The root directory cannot be moved.", code="invalid_path")
    fs.check(tr)
    found = locate(tr, fs, src)
    if found.entry is None:
        raise NotFound()
    if src == dst:
        return FileInfo.of(dst.text, found.entry)
    if dst.is_within(src):
        raise Conflict("A directory cannot move into itself.", code="invalid_move")
    log = ChangeLog(tr, fs)
    parent = ensure_directories(tr, fs, dst.parent, iter(ids), now, lambda p: log.add(p, "created", None))
    target = get_entry(tr, fs, parent, dst.name)
    if target is not None:
        if not overwrite:
            raise Conflict("Something exists at the destination.", code="already_exists")
        if target.type == "directory":
            if found.entry.type != "directory":
                raise is_a_directory()
            if has_children(tr, fs, target.id):
                raise Conflict("The destination directory is not empty.", code="directory_not_empty")
        else:
            if found.entry.type == "directory":
                raise not_a_directory()
            release_file(tr, fs, target.id)
    moved = found.entry.model_copy(update={"updated_at": now})
    clear_entry(tr, fs, found.parent_id, src.name)
    put_entry(tr, fs, parent, dst.name, moved)
    log.add(src, "moved_from", moved.etag)
    log.add(dst, "moved_to", moved.etag)
    return FileInfo.of(dst.text, moved)


# -- delete ------------------------------------------------------------------------------------
def _delete(
    tr: Transaction, fs: FileSpace, path: FilePath, recursive: bool, conditions: Preconditions
) -> str | None:
    fs.check(tr)
    found = locate(tr, fs, path)
    if found.entry is None:
        raise NotFound()
    conditions.check(found.entry)
    entry = found.entry
    log = ChangeLog(tr, fs)
    clear_entry(tr, fs, found.parent_id, path.name)
    log.add(path, "deleted", entry.etag)
    if entry.type == "file":
        release_file(tr, fs, entry.id)
        return None
    if not has_children(tr, fs, entry.id):
        return None
    if not recursive:
        raise Conflict("The directory is not empty; use recursive=true.", code="directory_not_empty")
    # Detached atomically: nothing below is reachable any more. Released in bounded steps.
    fs.mark_detached(tr, entry.id)
    return entry.id


def drain_trash_step(tr: Transaction, fs: FileSpace, dir_id: str, *, limit: int = TRASH_STEP) -> bool:
    """Release up to `limit` entries of detached directory `dir_id`; True when it is empty."""
    batch = children(tr, fs, dir_id, limit=limit)
    for name, entry in batch:
        if entry.type == "file":
            release_file(tr, fs, entry.id)
        else:
            fs.mark_detached(tr, entry.id)
        clear_entry(tr, fs, dir_id, name)
    if len(batch) < limit:
        fs.unmark_detached(tr, dir_id)
        return True
    return False


def _drain_any(tr: Transaction, fs: FileSpace) -> bool:
    found = tr.get_range(*fs.space.range("trash"), limit=1)
    if not found:
        return True
    drain_trash_step(tr, fs, fs.space.unpack(found[0][0])[1])
    return False


def drain_trash(db: Database, fs: FileSpace, *, deadline: float | None = None) -> bool:
    """Empty the session's detached directories (a step per transaction); True when none is left."""
    while not db.transact(_drain_any, fs):
        if deadline is not None and time.monotonic() > deadline:
            return False
    return True


def delete(
    db: Database,
    fs: FileSpace,
    path: FilePath,
    *,
    recursive: bool,
    conditions: Preconditions = NO_CONDITIONS,
    deadline: float | None = None,
) -> None:
    """Delete a file (all its versions) or a directory (recursive=true when not empty): one
    transaction makes it disappear; a directory's contents are then released in steps (GC
    finishes them if this process stops)."""
    detached = db.transact(_delete, fs, path, recursive, conditions)
    if detached is not None:
        drain_trash(db, fs, deadline=deadline)


# -- versions ----------------------------------------------------------------------------------
def _versions(
    tr: Transaction, fs: FileSpace, path: FilePath, limit: int, cursor: str | None
) -> tuple[list[VersionInfo], str | None]:
    _, entry = _locate_file(tr, fs, path)
    begin, end = fs.versions_range(entry.id)
    kvs, next_cursor = paginate(
        tr, begin, end, limit=limit, cursor=cursor, query="files.versions", reverse=True
    )
    return [VersionInfo.of(VERSION.decode(value)) for _, value in kvs], next_cursor


def list_versions(
    db: Database, fs: FileSpace, path: FilePath, *, limit: int, cursor: str | None
) -> tuple[list[VersionInfo], str | None]:
    return db.transact(_versions, fs, path, limit, cursor)


@transactional
def restore(
    tr: Transaction,
    fs: FileSpace,
    path: FilePath,
    version: int,
    *,
    restore_id: str,
    now: datetime,
    policy: Policy,
) -> FileInfo:
    """A new version of `path` whose content is that of `version`."""
    parent_id, entry = _locate_file(tr, fs, path)
    current = get_version(tr, fs, entry.id, entry.version)
    if current is not None and current.upload == restore_id:
        return FileInfo.of(path.text, entry)  # a retried commit
    old = get_version(tr, fs, entry.id, version)
    if old is None:
        raise NotFound("No such version of this file.")
    quota.check(tr, fs.tenant_id, old.size, policy)
    chunks.add_manifest_ref(tr, fs.tenant_id, bytes.fromhex(old.sha256), None)
    log = ChangeLog(tr, fs)
    new = commit_version(
        tr, fs, path, parent_id, entry,
        new_id=entry.id, sha256=old.sha256, size=old.size, content_type=old.content_type,
        upload=restore_id, now=now, policy=policy, log=log,
    )  # fmt: skip
    return FileInfo.of(path.text, new)


__all__ = [
    "ROOT_ID",
    "Readable",
    "delete",
    "drain_trash",
    "iter_content",
    "list_files",
    "list_versions",
    "mkdir",
    "move",
    "open_file",
    "restore",
]
