"""What the ops jobs write in the store, all under `keyspace.OPS` as small JSON values:

    ("job", name)             → last run of a job: started/finished, duration, outcome, counts, detail
    ("lease", name)           → pack((holder, expires_unix)) while a run of the job is in progress
    ("backup", backup_id)     → a backup: kind, created, size, key count, verified_at / failure
    ("progress", name)        → where a bounded job resumes (verify, the logical export)
    ("import", tenant_id)     → a per-tenant import in progress (its file's digest)

Backups are files (see `coditect.ops.archive`); these records are the index the health job reads
("age of the newest verified backup") without touching the backup directory, and a restored
store carries them too, so they say what was known at the time of the snapshot.
"""

from __future__ import annotations

import json
import time
from typing import Any

import fdb.tuple as fdbtuple

from coditect.keyspace import OPS
from coditect.store import Database, Transaction


def job_key(name: str) -> bytes:
    return OPS.key("job", name)


def backup_key(backup_id: str) -> bytes:
    return OPS.key("backup", backup_id)


def progress_key(name: str) -> bytes:
    return OPS.key("progress", name)


def import_key(tenant_id: str) -> bytes:
    return OPS.key("import", tenant_id)


def _load(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def put(tr: Transaction, key: bytes, value: dict[str, Any]) -> None:
    tr.set(key, _dump(value))


def clear(tr: Transaction, key: bytes) -> None:
    tr.clear(key)


def get(tr: Transaction, key: bytes) -> dict[str, Any] | None:
    return _load(tr.get(key))


def update(db: Database, key: bytes, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the JSON record at `key` (created when absent); the new record."""

    def body(tr: Transaction) -> dict[str, Any]:
        current = _load(tr.get(key)) or {}
        current.update(fields)
        tr.set(key, _dump(current))
        return current

    return db.transact(body)


def read(db: Database, key: bytes) -> dict[str, Any] | None:
    return db.transact(lambda tr: _load(tr.get(key)))


def job_runs(db: Database) -> dict[str, dict[str, Any]]:
    """The last recorded run of every job, by name."""
    begin, end = OPS.range("job")

    def body(tr: Transaction) -> dict[str, dict[str, Any]]:
        out = {}
        for key, raw in tr.snapshot.get_range(begin, end):
            value = _load(raw)
            if value is not None:
                out[str(OPS.unpack(key)[1])] = value
        return out

    return db.transact(body)


def backups(db: Database) -> list[dict[str, Any]]:
    """Every backup record, oldest first (ids sort by time)."""
    begin, end = OPS.range("backup")

    def body(tr: Transaction) -> list[dict[str, Any]]:
        return [v for _, raw in tr.snapshot.get_range(begin, end) if (v := _load(raw)) is not None]

    return db.transact(body)


# -- leases: one run of a job at a time ------------------------------------------------------
def acquire_lease(db: Database, name: str, holder: str, seconds: float, now: float | None = None) -> bool:
    """Take the job's lease for `seconds` unless another holder has an unexpired one."""
    at = time.time() if now is None else now
    key = OPS.key("lease", name)

    def body(tr: Transaction) -> bool:
        raw = tr.get(key)
        if raw is not None:
            current, expires = fdbtuple.unpack(raw)
            if current != holder and float(expires) > at:
                return False
        tr.set(key, fdbtuple.pack((holder, at + seconds)))
        return True

    return db.transact(body)


def release_lease(db: Database, name: str, holder: str) -> None:
    key = OPS.key("lease", name)

    def body(tr: Transaction) -> None:
        raw = tr.get(key)
        if raw is not None and fdbtuple.unpack(raw)[0] == holder:
            tr.clear(key)

    db.transact(body)
