"""Restore a backup into a data directory (SQLite) or into any store (logical backups).

A target is *live* when:

- its `store.db` exists and holds at least one key (someone's data), or
- a local stack runs on it: `<data dir>/devstack.json` names a supervisor pid that is alive
  (the devstack's own ownership marker of a data directory), or
- (store URL targets) the store holds at least one key.

A live target is refused unless `force=True`; a running stack is refused even then (stop it
first: replacing a database under running processes corrupts their view of it). With `force` the
previous `store.db` (and its -wal/-shm) is kept beside it as `store.db.before-restore-<time>`.

The backup's files are checked against the manifest first, and the restored file must pass
`PRAGMA quick_check` before it is moved into place (write to a temp name, fsync, rename).
Signing keys and the refresh-token pepper are NOT in store backups (they are secrets, kept in the
Secret store): restore them separately (docs/runbook.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from coditect.ops import archive
from coditect.ops.archive import BackupInfo
from coditect.ops.logical import read_pairs
from coditect.ops.verify import check_files, materialize
from coditect.store import Database, Transaction

STORE_FILE = "store.db"
IMPORT_BATCH = 1000
IMPORT_BATCH_BYTES = 2_000_000


class RestoreRefused(Exception):
    """The target is live (or the backup is unusable); the message says why and what to do."""


def running_stack(data_dir: Path) -> int | None:
    try:
        pid = int(json.loads((data_dir / "devstack.json").read_text())["supervisor_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def store_keys(path: Path) -> int:
    """Keys in a store file (0 when it has no kv table)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT count(*) FROM (SELECT 1 FROM kv LIMIT 1)").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 1  # unreadable but present: treat as data (refuse without --force)


def restore_to_dir(info: BackupInfo, data_dir: Path, *, force: bool = False) -> Path:
    """Restore `info` as `<data_dir>/store.db`; the path of the restored store."""
    if not info.complete:
        raise RestoreRefused(f"backup {info.id} is partial (no manifest): it cannot be restored")
    pid = running_stack(data_dir)
    if pid is not None:
        raise RestoreRefused(
            f"a local stack (pid {pid}) runs on {data_dir}: stop it first (even with --force)"
        )
    target = data_dir / STORE_FILE
    if target.exists() and store_keys(target) and not force:
        raise RestoreRefused(f"{target} exists and holds data: restore into a new directory, or pass --force")
    assert info.manifest is not None  # complete
    if info.manifest.schema_version > archive.KV_SCHEMA_VERSION:
        raise RestoreRefused(
            f"backup {info.id} holds store format {info.manifest.schema_version}, newer than this "
            f"release's {archive.KV_SCHEMA_VERSION}: restore it with the release that took it"
        )
    check_files(info)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f"{STORE_FILE}.restoring"
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    materialize(info, tmp)
    conn = sqlite3.connect(tmp)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if rows != ["ok"]:
        raise RestoreRefused(f"the restored file fails quick_check: {'; '.join(rows[:3])}")
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    if target.exists():
        keep = f"{STORE_FILE}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{target}{suffix}")
            if old.exists():
                os.replace(old, data_dir / f"{keep}{suffix}")
    Path(f"{tmp}-wal").unlink(missing_ok=True)
    Path(f"{tmp}-shm").unlink(missing_ok=True)
    os.replace(tmp, target)
    archive.fsync_dir(data_dir)
    return target


def has_data(db: Database) -> bool:
    return bool(db.transact(lambda tr: tr.snapshot.get_range(b"", b"\xff", limit=1)))


def write_pairs(db: Database, pairs: object) -> int:
    """Write (key, value) pairs into `db` in bounded transactions; how many."""
    batch: list[tuple[bytes, bytes]] = []
    size = written = 0

    def flush(tr: Transaction, rows: list[tuple[bytes, bytes]]) -> None:
        for key, value in rows:
            tr.set(key, value)

    for key, value in pairs:  # type: ignore[attr-defined]
        batch.append((key, value))
        size += len(key) + len(value)
        if len(batch) >= IMPORT_BATCH or size >= IMPORT_BATCH_BYTES:
            db.transact(flush, batch)
            written, batch, size = written + len(batch), [], 0
    if batch:
        db.transact(flush, batch)
        written += len(batch)
    return written


def restore_to_store(info: BackupInfo, db: Database, *, force: bool = False) -> int:
    """Load a logical backup into `db` (e.g. a new FoundationDB cluster); keys written."""
    if info.manifest is None or info.manifest.kind != "logical":
        raise RestoreRefused("only logical backups restore into a store URL; a snapshot restores with --to")
    if has_data(db) and not force:
        raise RestoreRefused(f"{db.url} already holds data: pass --force to write over it")
    check_files(info)
    return sum(write_pairs(db, read_pairs(info.path / f.name)) for f in info.manifest.files)
