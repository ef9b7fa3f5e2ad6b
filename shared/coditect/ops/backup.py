"""The `backup` job: a snapshot (SQLite) or a logical export (any store), a manifest, retention.

Embedded SQLite: `sqlite3.Connection.backup` copies the live file page by page while the source
connection holds ONE read transaction (a WAL snapshot), so the copy is consistent, never restarts
when other processes commit (they keep writing to the WAL meanwhile), and sleeps
`backup_step_sleep` between steps of `backup_step_pages` pages to leave the disk and CPU to writers.
The snapshot is then checksummed range by range, compressed with zstd into `store.db.zst`, the
scratch copy deleted, and the manifest written last (coditect.ops.archive).

FoundationDB (or `--logical` anywhere): the cluster's own backup is the operator's
FoundationDBBackup (continuous, to a blob store); this job only monitors it (`fdbbackup status
--json` → `fdb_status.assess_backup`), and writes a logical export: one `.cdxl` file per tenant
and one of the global keys, read in bounded transactions (≤ `EXPORT_BATCH` keys each). It is
resumable: when the job's budget runs out it records which tenants are done and the next run
finishes the same backup id. It is consistent per transaction only (FoundationDB's 5 s MVCC
window), so verify reports cross-record inconsistencies of a logical backup as warnings.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from coditect import keyspace
from coditect.config import Settings
from coditect.ops import archive, fdb_admin, records
from coditect.ops.archive import BackupInfo, Manifest
from coditect.ops.logical import ExportWriter, read_pairs
from coditect.ops.retention import plan_retention
from coditect.ops.runner import BACKUP_AGE, JobContext, Result
from coditect.store import Database, KeyValue, Transaction, strinc
from coditect.store.sqlite import VERSION_SQL, SQLiteDatabase

log = logging.getLogger("coditect.ops")
SNAPSHOT = "store.db.zst"
EXPORT_BATCH = 1000  # keys per read transaction of the logical export
EXPORT_BATCH_BYTES = 4_000_000


# -- SQLite snapshot -------------------------------------------------------------------------
def snapshot_sqlite(source: Path, dest: Path, *, pages: int, sleep: float) -> int:
    """Copy the store file `source` to `dest` consistently while it is in use; its commit counter."""
    src = sqlite3.connect(source, isolation_level=None, timeout=30.0)
    try:
        src.execute("BEGIN")  # one read transaction for the whole copy: a fixed WAL snapshot
        (version,) = src.execute(VERSION_SQL).fetchone()
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=pages, sleep=sleep)
        finally:
            dst.close()
        src.execute("ROLLBACK")
    finally:
        src.close()
    return int(version)


def backup_sqlite(db: SQLiteDatabase, root: Path, settings: Settings, now: float) -> BackupInfo:
    started = time.monotonic()
    backup_id = archive.new_id(now)
    directory = root / backup_id
    directory.mkdir(parents=True)
    scratch = directory / ".snapshot.db"
    version = snapshot_sqlite(
        db.path, scratch, pages=settings.backup_step_pages, sleep=settings.backup_step_sleep
    )
    conn = sqlite3.connect(scratch)
    try:
        hasher = archive.checksum_pairs(archive.iter_sqlite_kv(conn), settings.backup_range_keys)
    finally:
        conn.close()
    raw_bytes = scratch.stat().st_size
    target = directory / SNAPSHOT
    with scratch.open("rb") as src, target.open("wb") as out:
        writer = archive.HashingWriter(out)
        zstandard.ZstdCompressor(level=3, write_checksum=True).copy_stream(src, writer)  # type: ignore[arg-type]
        out.flush()
        os.fsync(out.fileno())
    scratch.unlink()
    manifest = Manifest(
        id=backup_id, kind="sqlite", created_at=datetime.fromtimestamp(now, UTC),
        source=db.url, store_version=version, raw_bytes=raw_bytes, key_count=hasher.count,
        range_keys=settings.backup_range_keys, ranges=hasher.ranges,
        files=[archive.FileSum(name=SNAPSHOT, bytes=writer.bytes, sha256=writer.sha.hexdigest())],
        duration_seconds=round(time.monotonic() - started, 3),
    )  # fmt: skip
    archive.write_manifest(directory, manifest)
    return BackupInfo(backup_id, directory, manifest, archive.id_time(backup_id))


# -- logical export ----------------------------------------------------------------------------
def _first(tr: Transaction, begin: bytes, end: bytes) -> list[KeyValue]:
    return tr.snapshot.get_range(begin, end, limit=1)


def tenant_ids(db: Database) -> list[str]:
    """Every tenant id with data, one skip-read per tenant (no full scan)."""
    found: list[str] = []
    begin, end = keyspace.TENANT_ROOT.range()
    while True:
        rows = db.transact(_first, begin, end)
        if not rows:
            return found
        tid = keyspace.tenant_id_of(rows[0][0])
        if tid is None:
            return found
        found.append(tid)
        begin = strinc(keyspace.tenant(tid).raw_prefix)


def export_range(
    db: Database, begin: bytes, end: bytes, writer: ExportWriter, deadline: float | None
) -> bool:
    """Copy [begin, end) into `writer` in bounded snapshot transactions; False if out of time."""

    def batch(tr: Transaction, start: bytes) -> list[tuple[bytes, bytes]]:
        tr.set_batch_priority()  # bulk work: yields to user traffic on FoundationDB
        rows, size = [], 0
        for row in tr.snapshot.get_range(start, end, limit=EXPORT_BATCH):
            rows.append(row)  # already a `(key, value)` tuple: no copy
            size += len(row[0]) + len(row[1])
            if size >= EXPORT_BATCH_BYTES:
                break
        return rows

    start = begin
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return False
        rows = db.transact(batch, start)
        for key, value in rows:
            writer.add(key, value)
        if not rows:
            return True
        start = rows[-1][0] + b"\x00"


def _export_file(db: Database, path: Path, header: dict[str, Any], begin: bytes, end: bytes,
                 deadline: float | None) -> tuple[bool, ExportWriter]:  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    writer = ExportWriter(tmp, header)
    done = export_range(db, begin, end, writer, deadline)
    writer.close()
    if done:
        os.replace(tmp, path)
    else:
        tmp.unlink(missing_ok=True)
    return done, writer


def backup_logical(
    db: Database, root: Path, settings: Settings, now: float, deadline: float | None = None
) -> BackupInfo | None:
    """A logical export of every tenant + the global keys; None when the budget ran out (resumed
    by the next call, which continues the same backup id)."""
    started = time.monotonic()
    progress = records.read(db, records.progress_key("backup")) or {}
    backup_id = progress.get("id") if (root / str(progress.get("id", "-"))).is_dir() else None
    backup_id = backup_id or archive.new_id(now)
    directory = root / backup_id
    (directory / "tenants").mkdir(parents=True, exist_ok=True)
    records.update(db, records.progress_key("backup"), id=backup_id)
    parts: list[tuple[str, Path, bytes, bytes]] = [
        ("global", directory / "global.cdxl", *keyspace.GLOBAL.range())
    ]
    tenants = tenant_ids(db)
    parts += [(tid, directory / "tenants" / f"{tid}.cdxl", *keyspace.tenant(tid).range()) for tid in tenants]
    for name, path, begin, end in parts:
        if path.exists():
            continue  # exported by an earlier run of this backup
        done, _ = _export_file(db, path, {"backup": backup_id, "part": name}, begin, end, deadline)
        if not done:
            return None
    hasher = archive.RangeHasher(settings.backup_range_keys)
    files = []
    for _, path, _, _ in sorted(parts, key=lambda p: p[2]):  # key order: ("g",...) < ("t",...)
        for key, value in read_pairs(path):
            hasher.add(key, value)
        summed = archive.file_sum(path)
        files.append(summed.model_copy(update={"name": str(path.relative_to(directory))}))
    hasher.finish()
    manifest = Manifest(
        id=backup_id, kind="logical", created_at=datetime.fromtimestamp(archive.id_time(backup_id), UTC),
        source=db.url, raw_bytes=hasher.raw_bytes, key_count=hasher.count, range_keys=settings.backup_range_keys,
        ranges=hasher.ranges, files=files, tenants=tenants, duration_seconds=round(time.monotonic() - started, 3),
    )  # fmt: skip
    archive.write_manifest(directory, manifest)
    db.transact(lambda tr: tr.clear(records.progress_key("backup")))
    return BackupInfo(backup_id, directory, manifest, archive.id_time(backup_id))


# -- the job -----------------------------------------------------------------------------------
def take_backup(db: Database, settings: Settings, now: float, *, logical: bool = False,
                deadline: float | None = None) -> BackupInfo | None:  # fmt: skip
    """One backup into `settings.resolved_backup_dir`, recorded under `records.backup_key`."""
    root = settings.resolved_backup_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(db, SQLiteDatabase) and not logical:
        info: BackupInfo | None = backup_sqlite(db, root, settings, now)
    else:
        info = backup_logical(db, root, settings, now, deadline)
    if info is not None and info.manifest is not None:
        m = info.manifest
        records.update(db, records.backup_key(info.id), id=info.id, kind=m.kind, path=str(info.path),
                       created_at=m.created_at.isoformat(), created_unix=info.created, bytes=info.size,
                       raw_bytes=m.raw_bytes, key_count=m.key_count)  # fmt: skip
    return info


def apply_retention(db: Database, settings: Settings, now: float) -> list[str]:
    root = settings.resolved_backup_dir.resolve()
    verified = [r for r in records.backups(db) if r.get("verified_at")]
    protect = max((str(r["id"]) for r in verified), default=None)
    doomed = plan_retention(
        archive.list_backups(root), now=now, keep_last=settings.backup_keep_last,
        keep_daily=settings.backup_keep_daily, keep_weekly=settings.backup_keep_weekly, protect=protect,
    )  # fmt: skip
    for info in doomed:
        archive.remove(info)
        db.transact(records.clear, records.backup_key(info.id))
    return [info.id for info in doomed]


def run(ctx: JobContext) -> Result:
    result = Result()
    if fdb_admin.is_fdb(ctx.db):
        report = fdb_admin.backup_report(ctx.db, ctx.settings, now=ctx.now)
        result.data["fdb_backup"] = report
        if report["outcome"] != "pass":
            result.status = "warn"
            ctx.alert({"job": "backup", "check": "fdb_backup", "outcome": report["outcome"],
                       "detail": report.get("detail", "")})  # fmt: skip
    info = take_backup(ctx.db, ctx.settings, ctx.now, deadline=ctx.deadline)
    if info is None:
        result.status, result.detail = "incomplete", "logical export resumes next run"
        return result
    deleted = apply_retention(ctx.db, ctx.settings, ctx.now)
    BACKUP_AGE.labels(state="taken").set(max(0.0, time.time() - info.created))
    assert info.manifest is not None
    result.counts = {"bytes": info.size, "keys": info.manifest.key_count, "deleted": len(deleted)}
    result.detail = f"backup {info.id} ({info.manifest.kind}); retention deleted {len(deleted)}"
    result.data["backup_id"] = info.id
    return result
