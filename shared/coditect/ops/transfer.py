"""Per-tenant export and import: a tenant takes its data to another Coditect store.

Export (`export_tenant`): every key under `keyspace.tenant(tid)`, plus the global keys that belong
to the tenant — those whose key tuple names the tenant id (purge queue, files GC work list) or
whose value is a tuple starting with it (email index, refresh/invite token digests, live
workspaces). Ephemeral global state is left out: relay tickets and cookie sessions (≤ 60 s /
a working day), dedupe marks, the outbox, throttles, ops records. Written as a logical export
(`coditect.ops.logical`, header `{"format": "coditect-tenant-export/1", "tenant": tid}`), read
in bounded snapshot transactions: consistent per transaction, so export a quiet tenant (or
disable its users first) for a point-in-time copy.

Import (`import_tenant`): tenant ids are global UUIDs, so keys are kept as they are. Refused when
the target already has data of that tenant, or when a global key of the export exists in the target
with another value (an email taken by someone else, ...): `ImportConflict` lists them. Written in
bounded transactions under an `("import", tid)` marker, so an interrupted import resumes (re-run it).
Messages are keyed by the source store's commit versionstamps; on a SQLite target the commit
counter is advanced past the newest imported stamp so later appends still sort after them (on
FoundationDB a younger cluster's versions may be smaller: see docs/runbook.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fdb.tuple as fdbtuple

from coditect import keyspace
from coditect.ops import records
from coditect.ops.archive import file_sum
from coditect.ops.logical import ExportWriter, read_header, read_pairs
from coditect.ops.restore import write_pairs
from coditect.store import Database, KeyValue, Transaction
from coditect.store.sqlite import SQLiteDatabase

FORMAT = "coditect-tenant-export/1"
SKIP_GLOBAL = (keyspace.DEDUPE, keyspace.OUTBOX, keyspace.OPS, keyspace.PROBE, keyspace.THROTTLE)
BATCH = 1000


class ImportConflict(Exception):
    """The target store cannot take this tenant as it is; the message lists why."""


@dataclass(frozen=True)
class TransferStats:
    tenant: str
    keys: int
    global_keys: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "keys": self.keys,
            "global_keys": self.global_keys,
            "bytes": self.bytes,
        }


def _batch(tr: Transaction, begin: bytes, end: bytes) -> list[KeyValue]:
    return tr.snapshot.get_range(begin, end, limit=BATCH)


def _get(tr: Transaction, key: bytes) -> bytes | None:
    return tr.snapshot.get(key)


def _scan(db: Database, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
    start = begin
    while True:
        rows = db.transact(_batch, start, end)
        yield from rows
        if len(rows) < BATCH:
            return
        start = rows[-1][0] + b"\x00"


def belongs(tenant_id: str, key: bytes, value: bytes) -> bool:
    """Is this global pair the tenant's (see the module docstring)?"""
    if any(key in space for space in SKIP_GLOBAL):
        return False
    try:
        if tenant_id in keyspace.GLOBAL.unpack(key):
            return True
    except ValueError:
        return False
    try:
        decoded = fdbtuple.unpack(value)
    except Exception:  # noqa: BLE001 — JSON or raw values are not tuples
        return False
    return bool(decoded) and decoded[0] == tenant_id


def export_tenant(db: Database, tenant_id: str, out: Path) -> TransferStats:
    space = keyspace.tenant(tenant_id)  # validates the id
    tmp = out.with_name(out.name + ".tmp")
    header = {"format": FORMAT, "tenant": tenant_id, "created_at": time.time(), "source": db.url}
    writer = ExportWriter(tmp, header)
    global_keys = 0
    try:
        for key, value in _scan(db, *keyspace.GLOBAL.range()):
            if belongs(tenant_id, key, value):
                writer.add(key, value)
                global_keys += 1
        for key, value in _scan(db, *space.range()):
            writer.add(key, value)
        if writer.count == global_keys:
            raise LookupError(f"tenant {tenant_id} has no data in {db.url}")
    except BaseException:
        writer.close()  # the file handle, not only the file: nothing half-written is left open
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    tmp.replace(out)
    return TransferStats(tenant_id, writer.count, global_keys, out.stat().st_size)


def _max_stamp_version(key: bytes) -> int:
    try:
        parts = fdbtuple.unpack(key)
    except Exception:  # noqa: BLE001
        return 0
    stamps = [p.tr_version for p in parts if isinstance(p, fdbtuple.Versionstamp) and p.tr_version]
    return max((int.from_bytes(s[:8], "big") for s in stamps), default=0)


def import_tenant(db: Database, path: Path) -> TransferStats:
    header = read_header(path)
    if header.get("format") != FORMAT:
        raise ImportConflict(f"{path.name} is not a tenant export (format {header.get('format')!r})")
    tenant_id = str(header["tenant"])
    space = keyspace.tenant(tenant_id)
    digest = file_sum(path).sha256
    marker = records.import_key(tenant_id)
    resuming = (records.read(db, marker) or {}).get("sha256") == digest
    if not resuming and db.transact(lambda tr: tr.snapshot.get_range(*space.range(), limit=1)):
        raise ImportConflict(
            f"tenant {tenant_id} already has data in {db.url}: import into a store without it"
        )
    conflicts: list[str] = []
    global_keys = max_version = 0
    for key, value in read_pairs(path):  # pass 1: checks only (read_pairs verifies the trailer)
        max_version = max(max_version, _max_stamp_version(key))
        if key in space:
            continue
        global_keys += 1
        current = db.transact(_get, key)
        if current is not None and current != value:
            conflicts.append(_describe(key))
    if conflicts:
        shown = "; ".join(conflicts[:10])
        raise ImportConflict(f"{len(conflicts)} global key(s) already used by other data: {shown}")
    records.update(db, marker, sha256=digest, started=time.time())
    written = write_pairs(db, read_pairs(path))
    if isinstance(db, SQLiteDatabase) and max_version:
        advance_sqlite_version(db.path, max_version)
    db.transact(lambda tr: tr.clear(marker))
    return TransferStats(tenant_id, written, global_keys, path.stat().st_size)


def advance_sqlite_version(path: Path, at_least: int) -> None:
    """Make the embedded store's next commit versionstamp larger than `at_least`'s."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE name = 'version'", (at_least,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _describe(key: bytes) -> str:
    try:
        parts = keyspace.GLOBAL.unpack(key)
    except ValueError:
        return key.hex()[:40]
    if parts and parts[0] == "email":
        return "an email address of this tenant is registered in the target"
    return repr(parts[:2]) + " " + hashlib.sha256(key).hexdigest()[:8]
