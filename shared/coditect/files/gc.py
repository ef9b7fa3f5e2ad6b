"""Garbage collection of file content: `collect_garbage(db, budget_seconds=...)` (ops cron `gc`).

Reference counting, not mark-and-sweep (see `chunks`): every reference is added or removed with
an atomic ADD in the transaction that creates or drops the thing holding it (a version record,
a manifest, a staged upload entry), and every removal leaves a candidate marker in
`keyspace.FILES_GC`. GC therefore never scans content; it visits candidates only:

1. uploads silent for `files_upload_stale_seconds`: marked aborted, staged references released;
2. the trash: directories detached by a recursive delete whose contents are still referenced;
3. manifests with 0 references for longer than `files_gc_grace_seconds`: deleted, and their
   chunk references released (the chunk markers inherit the manifest's timestamp);
4. chunks with 0 references for longer than the grace period: deleted, physical bytes counted down.

Why it is safe against concurrent uploads, forks and restores: deleting an object happens in a
transaction that *reads* its reference count (a read conflict on that key) and finds 0; adding
a reference *reads* the same key too (it must know whether the object exists). Serializability
makes one of them retry: either the adder sees the object gone and writes it afresh (chunks:
it has the bytes; manifests: an upload has the chunk list), or GC sees the new reference and
keeps the object. A reference held by a staged upload, a fork's copied version or an old
version counts like any other, so nothing referenced is ever collected. The grace period only
protects readers already streaming a version that was dropped meanwhile.

Each step is one small transaction (≤ ~100 candidates or ~4,000 chunk releases), so GC stays
inside FoundationDB's 5 s / 10 MB limits and can stop at `budget_seconds` and resume next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from coditect import keyspace
from coditect.config import get_settings
from coditect.files import chunks, upload
from coditect.files.service import drain_trash_step
from coditect.files.tree import FileSpace
from coditect.repo import blobs
from coditect.store import Database, Transaction

log = logging.getLogger(__name__)
STEP = 100  # candidates per transaction
MAX_RELEASES = 4000  # chunk references released per manifest transaction


def _candidates(
    tr: Transaction, kind: str, after: bytes | None, limit: int
) -> list[tuple[bytes, tuple[Any, ...], float]]:
    begin, end = keyspace.FILES_GC.range(kind)
    if after is not None:
        begin = after + b"\x00"
    out = []
    for key, value in tr.snapshot.get_range(begin, end, limit=limit):
        parts = keyspace.FILES_GC.unpack(key)[1:]
        out.append((key, parts, chunks.read_stamp(value) if value else 0.0))
    return out


Counts = dict[str, int]
_DONE = b""  # a step's answer when its phase has nothing more to do


def _upload_step(tr: Transaction, now: float, stale: float, after: bytes | None, counts: Counts) -> bytes:
    """One release step of the first upload marker after `after`; where to look next."""
    found = _candidates(tr, "upload", after, 1)
    if not found:
        return _DONE
    key, (tid, upload_id), _ = found[0]
    touched = tr.get(key)  # re-read with a conflict: a live upload may be touching it right now
    if touched is not None and now - chunks.read_stamp(touched) < stale:
        return key  # alive: skip it
    if upload.release_staged_step(tr, tid, upload_id, now=now):
        counts["uploads_reaped"] += 1
        return key
    return after or b"\x00"  # more staged entries to release: same upload again


def _trash_step(tr: Transaction, after: bytes | None, counts: Counts) -> bytes:
    found = _candidates(tr, "trash", None, 1)
    if not found:
        return _DONE
    _, (tid, sid, dir_id), _ = found[0]
    if drain_trash_step(tr, FileSpace(tid, sid), dir_id):
        counts["trash_emptied"] += 1
    return b"\x00"


def _manifest_step(tr: Transaction, now: float, grace: float, after: bytes | None, counts: Counts) -> bytes:
    found = _candidates(tr, "manifest", after, STEP)
    releases = 0
    last = after or b"\x00"
    for key, (tid, sha), stamp in found:
        if releases >= MAX_RELEASES:
            return last
        last = key
        if now - stamp < grace:
            continue
        refs = chunks.manifest_refs(tr, tid, sha)
        if refs is not None and refs < 0:
            log.error("negative manifest refcount", extra={"fields": {"tenant_id": tid, "sha256": sha.hex()}})
            continue
        if refs == 0:
            manifest = chunks.read_manifest(tr, tid, sha)
            for h in manifest.hashes if manifest is not None else ():
                chunks.release_chunk_ref(tr, tid, h, stamp)
                releases += 1
            blobs.clear_value(tr, chunks.manifest_key(tid, sha))
            tr.clear(chunks.manifest_refs_key(tid, sha))
            counts["manifests_freed"] += 1
        tr.clear(key)
    return last if len(found) == STEP else _DONE


def _chunk_step(tr: Transaction, now: float, grace: float, after: bytes | None, counts: Counts) -> bytes:
    found = _candidates(tr, "chunk", after, STEP)
    for key, (tid, h), stamp in found:
        if now - stamp < grace:
            continue
        refs = chunks.chunk_refs(tr, tid, h)
        if refs is not None and refs < 0:
            log.error("negative chunk refcount", extra={"fields": {"tenant_id": tid, "chunk": h.hex()}})
            continue
        if refs == 0:
            data = chunks.read_chunk(tr, tid, h)
            size = len(data) if data is not None else 0
            tr.clear(chunks.chunk_key(tid, h))
            tr.clear(chunks.chunk_refs_key(tid, h))
            tr.add(chunks.usage_key(tid, chunks.PHYSICAL), -size)
            counts["chunks_freed"] += 1
            counts["bytes_freed"] += size
        tr.clear(key)
    return found[-1][0] if len(found) == STEP else _DONE


Step = Callable[[Transaction, bytes | None, Counts], bytes]


def _attempt(tr: Transaction, step: Step, after: bytes | None) -> tuple[bytes, Counts]:
    tr.set_batch_priority()  # GC is bulk work: it yields to user traffic on FoundationDB
    counts: Counts = dict.fromkeys(COUNT_NAMES, 0)
    return step(tr, after, counts), counts  # fresh counts per attempt: a retried body counts once


COUNT_NAMES = ("uploads_reaped", "trash_emptied", "manifests_freed", "chunks_freed", "bytes_freed")


def collect_garbage(
    db: Database,
    *,
    budget_seconds: float,
    grace_seconds: float | None = None,
    upload_stale_seconds: float | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """One GC pass over every tenant, stopping after `budget_seconds` (resumable: the work list
    is durable). Returns counts of what it freed; `complete` is False when the budget ran out."""
    settings = get_settings()
    grace = settings.files_gc_grace_seconds if grace_seconds is None else grace_seconds
    stale = settings.files_upload_stale_seconds if upload_stale_seconds is None else upload_stale_seconds
    deadline = time.monotonic() + budget_seconds
    totals: dict[str, Any] = dict.fromkeys(COUNT_NAMES, 0)
    # Each phase reads the clock when it starts: markers left by an earlier phase of this very
    # run (a drained trash releases manifests) are then old enough for a grace of 0.
    clock_at: dict[str, float] = {}
    phases: list[Step] = [
        lambda tr, after, c: _upload_step(tr, clock_at["now"], stale, after, c),
        lambda tr, after, c: _trash_step(tr, after, c),
        lambda tr, after, c: _manifest_step(tr, clock_at["now"], grace, after, c),
        lambda tr, after, c: _chunk_step(tr, clock_at["now"], grace, after, c),
    ]
    for step in phases:
        clock_at["now"] = clock()
        after: bytes | None = None
        while True:
            if time.monotonic() > deadline:
                totals["complete"] = False
                return totals
            nxt, counts = db.transact(_attempt, step, after)
            for name, n in counts.items():
                totals[name] += n
            if nxt == _DONE:
                break
            after = None if nxt == b"\x00" else nxt
    totals["complete"] = True
    return totals
