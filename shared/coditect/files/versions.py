"""Writing and dropping file versions: the one place that keeps references and usage in step.

Every version record holds exactly one reference to its content's manifest and counts its size
in the tenant's logical bytes; `commit_version` and `drop_version` change record, reference and
counter in the same transaction, so no crash can leave them apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from coditect.errors import PreconditionFailed
from coditect.files import chunks
from coditect.files.changes import ChangeLog
from coditect.files.models import VERSION, Entry, VersionRecord
from coditect.files.paths import FilePath
from coditect.files.quota import Policy
from coditect.files.tree import FileSpace, put_entry, put_version, versions
from coditect.store import Transaction


def etag_of(file_id: str, version: int, sha256: str) -> str:
    """Opaque and unique per (file, version): an editor's If-Match stops at the next write even
    when the content came back identical (the lost-update guard wants that)."""
    return hashlib.sha256(f"{file_id}:{version}:{sha256}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Preconditions:
    """If-Match / If-None-Match of a write, as lists of unquoted etags (or ["*"])."""

    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None

    def check(self, current: Entry | None) -> None:
        etag = current.etag if current is not None and current.type == "file" else None
        exists = current is not None
        if self.if_match is not None:
            ok = exists if "*" in self.if_match else etag is not None and etag in self.if_match
            if not ok:
                raise PreconditionFailed("The file's current ETag does not match If-Match.")
        if self.if_none_match is not None:
            hit = exists if "*" in self.if_none_match else etag is not None and etag in self.if_none_match
            if hit:
                raise PreconditionFailed("The file exists (If-None-Match).")


NO_CONDITIONS = Preconditions()


def drop_version(tr: Transaction, fs: FileSpace, file_id: str, record: VersionRecord) -> None:
    chunks.release_manifest_ref(tr, fs.tenant_id, bytes.fromhex(record.sha256))
    tr.add(chunks.usage_key(fs.tenant_id, chunks.LOGICAL), -record.size)
    tr.clear(fs.version_key(file_id, record.version))


def release_file(tr: Transaction, fs: FileSpace, file_id: str) -> None:
    """Drop every version of a file and its version range (its entry is the caller's business)."""
    for record in versions(tr, fs, file_id):
        drop_version(tr, fs, file_id, record)
    tr.clear_range(*fs.versions_range(file_id))


def _retain(
    tr: Transaction, fs: FileSpace, file_id: str, current: int, policy: Policy, now: datetime
) -> None:
    """Drop the versions older than `current` that `policy` no longer keeps: past the newest
    `keep_versions` (the current one counts) or written before `keep_days`.

    Only what may be dropped is decoded, oldest first: decoding every retained version on every
    write made an often-saved file at its limit (an editor's autosave) pay for its whole history
    each time, +13 to 18 % per 4 KiB write at 20 versions (`bench/bench_files.py`, "history").
    Versions are written in version order, so the walk stops at the first one kept by age; a
    version whose writer's clock ran behind an older one's (milliseconds, two racing writers) is
    dropped one write later.
    """
    begin, _ = fs.versions_range(file_id)
    older = tr.get_range(begin, fs.version_key(file_id, current))
    past_count = len(older) - (policy.keep_versions - 1)  # the oldest this many go whatever their age
    cutoff = now - timedelta(days=policy.keep_days) if policy.keep_days > 0 else None
    for index, (_, value) in enumerate(older):
        kept_by_count = index >= past_count
        if kept_by_count and cutoff is None:
            return
        record = VERSION.decode(value)
        if kept_by_count and cutoff is not None and record.created_at >= cutoff:
            return
        drop_version(tr, fs, file_id, record)


def commit_version(
    tr: Transaction,
    fs: FileSpace,
    path: FilePath,
    parent_id: str,
    existing: Entry | None,
    *,
    new_id: str,
    sha256: str,
    size: int,
    content_type: str,
    upload: str,
    now: datetime,
    policy: Policy,
    log: ChangeLog,
) -> Entry:
    """Write the next version of `path` and point its entry at it. The caller has taken the
    manifest reference for `sha256` in this transaction."""
    version = existing.version + 1 if existing is not None else 1
    file_id = existing.id if existing is not None else new_id
    etag = etag_of(file_id, version, sha256)
    record = VersionRecord(
        version=version,
        size=size,
        sha256=sha256,
        etag=etag,
        content_type=content_type,
        created_at=now,
        upload=upload,
    )
    put_version(tr, fs, file_id, record)
    entry = Entry(
        id=file_id,
        type="file",
        size=size,
        sha256=sha256,
        etag=etag,
        version=version,
        content_type=content_type,
        created_at=existing.created_at if existing is not None else now,
        updated_at=now,
    )
    put_entry(tr, fs, parent_id, path.name, entry)
    tr.add(chunks.usage_key(fs.tenant_id, chunks.LOGICAL), size)
    _retain(tr, fs, file_id, version, policy, now)
    log.add(path, "modified" if existing is not None else "created", etag)
    return entry
