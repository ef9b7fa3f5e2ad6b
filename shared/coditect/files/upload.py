"""Streaming writes: staged chunks over several transactions, published by one flip.

    PUT body ──read 64 KiB at a time, hashing as it goes──▶ chunks
       │ (first, one read transaction refuses what can be refused before the body is read —
       │ preconditions, a directory in the way, quota — unless the body announces at most one
       │ chunk: reading that costs nothing, and the publish transaction checks it all again)
       │ small file (≤ BATCH_CHUNKS = 16 chunks, 1 MiB): chunks, manifest, version and entry in
       │ ONE transaction
       ▼ larger: staging transactions of 1, 1, 2, then 4 MiB (`staging_plan`; 1 MiB each on
         FoundationDB, `max_group`) — chunks written (or
         their refs bumped when the tenant has them) + one staged-reference entry
         `fuploads/(upload_id, first_index)` per 16 chunks; then ONE publish transaction takes
         the manifest reference, writes the version, flips the entry.

A staging transaction runs on a helper thread while the request thread reads and hashes the next
group; at most one is in flight, so the process holds at most two groups of the body (≤ 8 MiB).
Readers see the old version until the publish commits and the new one after: never a mix.
Staged chunks are referenced by the upload (their refcount includes the staged entries), so GC
cannot take them mid-upload; an upload that dies (client gone, process killed) leaves only
staged entries, which nobody can read, and `gc` releases them once the upload has been silent
for `files_upload_stale_seconds` (`keyspace.FILES_GC` ("upload", tid, id) carries its last-touched
time). The handler releases them at once when it sees the failure itself (after the staging in
flight has landed).

Reaping marks the upload record `aborted` in its first transaction; staging and publish read the
record, so a slow upload that GC gave up on fails instead of publishing references that were
already released.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from coditect import keyspace
from coditect.errors import ApiError, BadRequest
from coditect.files import chunks, quota
from coditect.files.changes import ChangeLog
from coditect.files.models import Entry
from coditect.files.paths import FilePath
from coditect.files.quota import Policy
from coditect.files.tree import (
    FileSpace,
    ensure_directories,
    get_entry,
    get_version,
    is_a_directory,
    parent_id_of,
)
from coditect.files.versions import Preconditions, commit_version
from coditect.store import Database, Transaction

BATCH_CHUNKS = 16  # chunks per staged entry (1 MiB); a body of at most this many is one transaction
MAX_GROUP = 4  # staged entries per staging transaction at full speed on SQLite: 4 MiB (fewer fsyncs)


def max_group(db: Database) -> int:
    """Staged entries per staging transaction on `db`: FoundationDB advises transactions of at
    most ~1 MB (its hard limit is 10 MB; big ones raise the cluster's latency for everyone), so
    1 there; the embedded SQLite store takes MAX_GROUP."""
    return 1 if db.url.startswith("fdb:") else MAX_GROUP


def group_size(staged_chunks: int, most: int = MAX_GROUP) -> int:
    """Chunks in the next staging transaction: 1, 1, 2, then `most` batches (a slow start, so a
    short upload is staged in small steps and a long one commits `most` MiB per transaction)."""
    return min(most, max(1, staged_chunks // BATCH_CHUNKS)) * BATCH_CHUNKS


def staging_plan(n_chunks: int, most: int = MAX_GROUP) -> list[int]:
    """Chunks per staging transaction for a body of `n_chunks` (empty: one transaction in all)."""
    plan: list[int] = []
    if n_chunks <= BATCH_CHUNKS:
        return plan
    staged = 0
    while n_chunks - staged > group_size(staged, most):
        plan.append(group_size(staged, most))
        staged += plan[-1]
    plan.append(n_chunks - staged)
    return plan


class UploadAborted(ApiError):
    """The upload was reaped (silent too long) or its session went away before publishing."""

    status = 409
    default_code = "upload_aborted"
    default_message = "The upload was abandoned before it completed; retry it."


def uploads(tid: str) -> keyspace.Subspace:
    return keyspace.tenant(tid).sub(keyspace.FILE_UPLOADS)


def gc_marker(tid: str, upload_id: str) -> bytes:
    return keyspace.FILES_GC.key("upload", tid, upload_id)


def _stamp(now: float) -> bytes:
    return chunks._stamp(now)


@dataclass(frozen=True)
class Written:
    entry: Entry
    created: bool
    path: FilePath


def read_exactly(stream: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = stream.read(n - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


# -- staging -------------------------------------------------------------------------------
def _stage(
    tr: Transaction,
    fs: FileSpace,
    upload_id: str,
    path: str,
    first: int,
    batch: list[tuple[bytes, bytes]],
    now: float,
) -> None:
    space = uploads(fs.tenant_id)
    record = tr.get(space.key(upload_id))
    if record is None and first == 0:
        doc = {"sid": fs.session_id, "path": path, "state": "active", "started": now}
        tr.set(space.key(upload_id), json.dumps(doc).encode())
    elif record is None or json.loads(record)["state"] != "active":
        raise UploadAborted()
    if tr.get(space.key(upload_id, first)) is not None:
        return  # this group committed already (a retry after commit_unknown_result)
    for h, data in sorted(batch, key=lambda item: item[0]):
        chunks.add_chunk_ref(tr, fs.tenant_id, h, data)  # in key order: B-tree locality
    # One staged-reference entry per BATCH_CHUNKS (their hashes concatenated), not one per chunk.
    for i in range(0, len(batch), BATCH_CHUNKS):
        tr.set(space.key(upload_id, first + i), b"".join(h for h, _ in batch[i : i + BATCH_CHUNKS]))
    tr.set(gc_marker(fs.tenant_id, upload_id), _stamp(now))


def release_staged_step(
    tr: Transaction, tid: str, upload_id: str, *, limit: int = 100, now: float | None = None
) -> bool:
    """One bounded step of giving up an upload: mark it aborted, release up to `limit` staged
    batches (≤ 16 references each). True when nothing is left (record and GC marker gone too)."""
    space = uploads(tid)
    record = tr.get(space.key(upload_id))
    if record is not None:
        doc = json.loads(record)
        if doc["state"] == "active":
            doc["state"] = "aborted"
            tr.set(space.key(upload_id), json.dumps(doc).encode())
    staged = tr.get_range(*space.range(upload_id), limit=limit)
    for key, hashes in staged:
        for i in range(0, len(hashes), chunks.HASH_SIZE):
            chunks.release_chunk_ref(tr, tid, hashes[i : i + chunks.HASH_SIZE], now)
        tr.clear(key)
    if len(staged) < limit:
        tr.clear(space.key(upload_id))
        tr.clear(gc_marker(tid, upload_id))
        return True
    return False


def abort(db: Database, tid: str, upload_id: str) -> None:
    """Release an upload's staged chunks now (best effort: GC finishes what this leaves)."""
    try:
        while not db.transact(release_staged_step, tid, upload_id):
            pass
    except Exception:  # noqa: BLE001 — the GC marker stays; gc will reap it later
        return


# -- publish -------------------------------------------------------------------------------
def _publish(
    tr: Transaction,
    fs: FileSpace,
    path: FilePath,
    *,
    upload_id: str,
    staged: bool,
    inline: list[tuple[bytes, bytes]],
    hashes: list[bytes],
    sha256: str,
    size: int,
    content_type: str,
    conditions: Preconditions,
    ids: list[str],
    now: datetime,
    policy: Policy,
) -> tuple[Entry, bool]:
    fs.check(tr)
    log = ChangeLog(tr, fs)
    id_iter = iter(ids[1:])
    parent_id = ensure_directories(tr, fs, path.parent, id_iter, now, lambda p: log.add(p, "created", None))
    existing = get_entry(tr, fs, parent_id, path.name)
    if existing is not None and existing.type == "file":
        current = get_version(tr, fs, existing.id, existing.version)
        if current is not None and current.upload == upload_id:
            return existing, existing.version == 1  # published already: a retried commit
    if existing is not None and existing.type == "directory":
        raise is_a_directory()
    space = uploads(fs.tenant_id)
    if staged:
        record = tr.get(space.key(upload_id))
        if record is None or json.loads(record)["state"] != "active":
            raise UploadAborted()
    conditions.check(existing)
    quota.check(tr, fs.tenant_id, size, policy)
    digest = bytes.fromhex(sha256)
    manifest = chunks.Manifest(size, chunks.CHUNK_SIZE, tuple(hashes))
    created_manifest = chunks.add_manifest_ref(tr, fs.tenant_id, digest, manifest)
    if staged:
        if not created_manifest:  # the stored manifest holds its own chunk references
            for h in hashes:
                chunks.release_chunk_ref(tr, fs.tenant_id, h)
        tr.clear_range(*space.range(upload_id))
        tr.clear(space.key(upload_id))
        tr.clear(gc_marker(fs.tenant_id, upload_id))
    elif created_manifest:
        for h, data in inline:
            chunks.add_chunk_ref(tr, fs.tenant_id, h, data)
    entry = commit_version(
        tr, fs, path, parent_id, existing,
        new_id=ids[0], sha256=sha256, size=size, content_type=content_type,
        upload=upload_id, now=now, policy=policy, log=log,
    )  # fmt: skip
    return entry, existing is None


def _precheck(
    tr: Transaction,
    fs: FileSpace,
    path: FilePath,
    conditions: Preconditions,
    announced: int | None,
    policy: Policy,
) -> int:
    """Fail before reading the body: wrong preconditions, a directory in the way, over quota.
    Returns the tenant's logical usage (for the running quota check of a body without length)."""
    fs.check(tr)
    parent = parent_id_of(tr, fs, path)
    existing = None if parent is None else get_entry(tr, fs, parent, path.name)
    if existing is not None and existing.type == "directory":
        raise is_a_directory()
    conditions.check(existing)
    if announced is not None:
        quota.check(tr, fs.tenant_id, announced, policy)
    return quota.logical_used(tr, fs.tenant_id)


def _check_before_body(
    db: Database,
    fs: FileSpace,
    path: FilePath,
    conditions: Preconditions,
    content_length: int | None,
    policy: Policy,
) -> int:
    """`_precheck` in a read transaction of its own; skipped (0) for a body announcing at most one
    chunk: reading it costs nothing, and `_publish` checks all of it again (usage is only needed
    without a Content-Length). A small write is then a single transaction."""
    if content_length is not None and content_length <= chunks.CHUNK_SIZE:
        return 0
    return db.transact(_precheck, fs, path, conditions, content_length, policy)


def _check_size(size: int, content_length: int | None, used: int, policy: Policy) -> None:
    """Refuse a body as soon as what was read passes the file size limit, or the quota when no
    Content-Length let `_precheck` refuse it before reading."""
    if size > policy.max_file_size:
        raise quota.too_large()
    if content_length is None and used + size > policy.quota_bytes:
        raise quota.over_quota()


def write_stream(
    db: Database,
    fs: FileSpace,
    path: FilePath,
    stream: IO[bytes],
    *,
    content_length: int | None,
    content_type: str,
    conditions: Preconditions,
    policy: Policy,
    clock: Callable[[], float] = time.time,
) -> Written:
    """Store the body of `stream` as the next version of `path` (see the module docstring).

    A staging transaction runs on a helper thread while this one reads and hashes the next group
    (the store and hashlib release the GIL). At most one is in flight: it is waited for as soon
    as the next group is full, so when a group is handed over every earlier group is committed.
    """
    if content_length is not None and content_length > policy.max_file_size:
        raise quota.too_large()
    used = _check_before_body(db, fs, path, conditions, content_length, policy)
    upload_id = uuid.uuid4().hex
    ids = [uuid.uuid4().hex for _ in range(len(path.segments))]
    sha = hashlib.sha256()
    hashes: list[bytes] = []
    pending: list[tuple[bytes, bytes]] = []
    size = staged_chunks = 0
    most = max_group(db)
    stager: ThreadPoolExecutor | None = None  # started with the first staging transaction
    in_flight: Future[None] | None = None
    try:
        while True:
            data = read_exactly(stream, chunks.CHUNK_SIZE)
            if not data:
                break
            size += len(data)
            _check_size(size, content_length, used, policy)
            h = hashlib.sha256(data).digest()
            sha.update(data)
            hashes.append(h)
            pending.append((h, data))
            group = group_size(staged_chunks, most)
            if len(pending) > group:  # more than one group: stage the full one
                batch, pending = pending[:group], pending[group:]
                if in_flight is not None:
                    in_flight.result()  # backpressure, and its error surfaces here
                if stager is None:
                    stager = ThreadPoolExecutor(max_workers=1, thread_name_prefix="files-stage")
                in_flight = stager.submit(
                    db.transact, _stage, fs, upload_id, path.text, staged_chunks, batch, clock()
                )
                staged_chunks += len(batch)
            if len(data) < chunks.CHUNK_SIZE:
                break
        if content_length is not None and size != content_length:
            raise BadRequest("The request body ended before its Content-Length.", code="incomplete_body")
        if in_flight is not None:
            in_flight.result()
            if pending:
                db.transact(_stage, fs, upload_id, path.text, staged_chunks, pending, clock())
                staged_chunks += len(pending)
                pending = []
        now = datetime.fromtimestamp(clock(), UTC)
        entry, created = db.transact(
            _publish, fs, path,
            upload_id=upload_id, staged=staged_chunks > 0, inline=pending, hashes=hashes,
            sha256=sha.hexdigest(), size=size, content_type=content_type,
            conditions=conditions, ids=ids, now=now, policy=policy,
        )  # fmt: skip
    except BaseException:
        if stager is not None:
            _stop(db, stager)  # the staging in flight lands first, then all is released
            stager = None
        if staged_chunks:
            abort(db, fs.tenant_id, upload_id)
        raise
    finally:
        if stager is not None:
            _stop(db, stager)
    return Written(entry, created, path)


def _stop(db: Database, stager: ThreadPoolExecutor) -> None:
    # After the work queued before it: close the helper thread's own store connections now
    # rather than whenever the garbage collector finds them.
    stager.submit(db.close)
    stager.shutdown(wait=True)
