"""The files area's part in forking and deleting workspace sessions (`coditect.sessions.hooks`).

Fork (`copy_file_tree`): copies the file tree's *metadata* of the source session into the
target — every directory entry (ids included: they are session-scoped keys) and, for each file,
its current version record — and takes one manifest reference per copied file. No chunk is
copied: the content is shared by reference, and writing to the fork writes new versions in the
fork's own subspace, so the parent never changes. Version history is not copied (the fork starts
with each file's current version, same version number and etag). The copy runs in bounded
transactions (COPY_STEP entries each) that skip keys already copied, so a retried or resumed
hook never counts a reference twice; a tree larger than one step is copied page by page, so a
write racing the fork may land in the copy (sessions' fork lease is not consulted).

Purge (`purge_file_refs`): releases the references a deleted session's version records hold
(manifest refs, logical bytes) in bounded steps, clearing each record as it goes; the sessions
purge then clears the subspace. GC frees what became unreferenced.
"""

from __future__ import annotations

from coditect import keyspace
from coditect.files import chunks
from coditect.files.models import ENTRY, VERSION
from coditect.files.tree import FileSpace, get_version, put_version
from coditect.sessions import hooks
from coditect.sessions.fork import check_forking
from coditect.store import Database, Transaction

COPY_STEP = 500
PURGE_STEP = 500


def _copy_step(
    tr: Transaction, tid: str, source: str, target: str, after: bytes | None, check: bool
) -> bytes | None:
    if check:
        check_forking(tr, tid, source, target)
    src, dst = FileSpace(tid, source), FileSpace(tid, target)
    begin, end = src.space.range("e")
    kvs = tr.get_range(after + b"\x00" if after else begin, end, limit=COPY_STEP)
    for key, value in kvs:
        target_key = dst.space.key(*src.space.unpack(key))
        if tr.get(target_key) is not None:
            continue  # copied by an earlier attempt
        tr.set(target_key, value)
        entry = ENTRY.decode(value)
        if entry.type != "file":
            continue
        record = get_version(tr, src, entry.id, entry.version)
        if record is None:
            raise RuntimeError("a file's current version record is missing")
        put_version(tr, dst, entry.id, record)
        chunks.add_manifest_ref(tr, tid, bytes.fromhex(record.sha256), None)
        tr.add(chunks.usage_key(tid, chunks.LOGICAL), record.size)
    if len(kvs) < COPY_STEP:
        # Detached directories still being released in the source are copied as such, so the
        # fork's GC releases the copies it just referenced.
        for key, _ in tr.get_range(*src.space.range("trash")):
            dir_id = src.space.unpack(key)[1]
            dst.mark_detached(tr, dir_id)
        return None
    return kvs[-1][0]


def copy_tree(db: Database, tenant_id: str, source_sid: str, target_sid: str, *, check: bool = True) -> None:
    """Copy the source's file tree into the target, metadata only (see module docstring).
    `check`: abort when the sessions fork was abandoned (off only for store-level tests)."""
    after: bytes | None = None
    while True:
        after = db.transact(_copy_step, tenant_id, source_sid, target_sid, after, check)
        if after is None:
            return


def copy_file_tree(db: Database, tenant_id: str, source_sid: str, target_sid: str, at: bytes) -> None:
    """Fork hook (`at` is not used: see the module docstring on pages and racing writes)."""
    copy_tree(db, tenant_id, source_sid, target_sid)


def purge_file_refs(tr: Transaction, tenant_id: str, session_id: str) -> bool:
    """Purge hook: release up to PURGE_STEP version records' references; True when none is left."""
    fs = FileSpace(tenant_id, session_id)
    kvs = tr.get_range(*fs.space.range("v"), limit=PURGE_STEP)
    for key, value in kvs:
        record = VERSION.decode(value)
        chunks.release_manifest_ref(tr, tenant_id, bytes.fromhex(record.sha256))
        tr.add(chunks.usage_key(tenant_id, chunks.LOGICAL), -record.size)
        tr.clear(key)
    if len(kvs) < PURGE_STEP:
        tr.clear_range(*keyspace.FILES_GC.range("trash", tenant_id, session_id))
        return True
    return False


hooks.register_fork_hook(copy_file_tree)
hooks.register_purge_hook(purge_file_refs)
