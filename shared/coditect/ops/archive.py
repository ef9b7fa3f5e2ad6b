"""The backup directory: one sub-directory per backup, its manifest written last.

    <backup_dir>/<id>/                   id = 20250101T101700Z-1a2b (UTC time, sorts by age)
        store.db.zst                     kind "sqlite": the SQLite snapshot, zstd-compressed
        global.cdxl, tenants/<tid>.cdxl  kind "logical": the export (coditect.ops.logical)
        manifest.json                    written LAST, atomically (temp + fsync + rename + fsync dir)

A directory without `manifest.json` is a partial backup (killed, or a logical export still
resuming): never listed, never restored, and removed by retention once older than
`PARTIAL_GRACE`. The manifest holds what verify compares: the SHA-256 of every file and per-range
checksums of the key space — SHA-256 over `>II(len key, len value) key value` of each pair in key
order, one digest per `range_keys` consecutive keys (first/last key of each range in hex), plus
the key count and the store's schema version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel

FORMAT = "coditect-backup/1"
MANIFEST = "manifest.json"
# The SQLite store's file format (coditect.store.sqlite.SCHEMA); restores refuse a format newer than
# theirs. 2: a commit log (table `commits`) whose newest row is the counter, `meta` only a floor.
# 3: no commit log, the counter is `meta` alone (a format-2 file is migrated when a store opens it).
KV_SCHEMA_VERSION = 3
PARTIAL_GRACE = 6 * 3600.0  # seconds before a manifest-less directory counts as abandoned
_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


class RangeSum(BaseModel):
    first: str  # hex of the first key of the range
    last: str  # hex of the last key
    count: int
    sha256: str


class FileSum(BaseModel):
    name: str
    bytes: int
    sha256: str


class Manifest(BaseModel):
    format: str = FORMAT
    id: str
    kind: Literal["sqlite", "logical"]
    created_at: datetime
    source: str  # the store URL the backup was taken from
    schema_version: int = KV_SCHEMA_VERSION
    store_version: int | None = None  # SQLite commit counter of the snapshot
    raw_bytes: int  # uncompressed size (snapshot file, or sum of exported pairs)
    key_count: int
    range_keys: int
    ranges: list[RangeSum]
    files: list[FileSum]
    tenants: list[str] = []
    duration_seconds: float = 0.0


@dataclass(frozen=True)
class BackupInfo:
    id: str
    path: Path
    manifest: Manifest | None  # None: partial
    created: float  # unix time from the id

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def size(self) -> int:
        return sum(f.bytes for f in self.manifest.files) if self.manifest else dir_size(self.path)


def new_id(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def id_time(backup_id: str) -> float:
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_backups(root: Path) -> list[BackupInfo]:
    """Every backup directory under `root`, oldest first (partial ones with manifest None)."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or not _ID.match(path.name):
            continue
        manifest = None
        if (path / MANIFEST).is_file():
            try:
                manifest = Manifest.model_validate_json((path / MANIFEST).read_bytes())
            except ValueError:
                manifest = None  # unreadable: treated as partial, verify of it reports why
        found.append(BackupInfo(path.name, path, manifest, id_time(path.name)))
    return found


def find(root: Path, backup_id: str | None) -> BackupInfo:
    """The complete backup `backup_id`, or the newest complete one; LookupError otherwise."""
    complete = [b for b in list_backups(root) if b.complete]
    if backup_id is None:
        if not complete:
            raise LookupError(f"no complete backup in {root}")
        return complete[-1]
    for info in list_backups(root):
        if info.id == backup_id:
            if not info.complete:
                raise LookupError(
                    f"backup {backup_id} has no (readable) {MANIFEST}: it is partial or damaged"
                )
            return info
    raise LookupError(f"no backup {backup_id!r} in {root}")


# -- writing ---------------------------------------------------------------------------------
def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write `manifest.json` atomically: a killed writer leaves no manifest, never half of one."""
    target = directory / MANIFEST
    tmp = directory / f".{MANIFEST}.tmp"
    with tmp.open("wb") as out:
        out.write(manifest.model_dump_json(indent=2).encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    fsync_dir(directory)
    return target


def remove(info: BackupInfo) -> None:
    shutil.rmtree(info.path, ignore_errors=True)


class HashingWriter:
    """A binary file wrapper that counts and SHA-256-hashes what is written through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.sha, self.bytes = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def file_sum(path: Path) -> FileSum:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return FileSum(name=path.name, bytes=path.stat().st_size, sha256=sha.hexdigest())


# -- per-range checksums -----------------------------------------------------------------------
_PAIR = struct.Struct(">II")


class RangeHasher:
    """Feed pairs in key order; `ranges` gets one digest per `range_keys` consecutive keys."""

    def __init__(self, range_keys: int) -> None:
        self.range_keys = range_keys
        self.ranges: list[RangeSum] = []
        self.count = 0
        self.raw_bytes = 0
        self._sha = hashlib.sha256()
        self._n = 0
        self._first = self._last = b""

    def add(self, key: bytes, value: bytes) -> None:
        if self._n == 0:
            self._first = key
        self._sha.update(_PAIR.pack(len(key), len(value)))
        self._sha.update(key)
        self._sha.update(value)
        self._last = key
        self._n += 1
        self.count += 1
        self.raw_bytes += len(key) + len(value)
        if self._n == self.range_keys:
            self._close()

    def _close(self) -> None:
        if self._n:
            self.ranges.append(RangeSum(first=self._first.hex(), last=self._last.hex(), count=self._n,
                                        sha256=self._sha.hexdigest()))  # fmt: skip
        self._sha, self._n = hashlib.sha256(), 0

    def finish(self) -> list[RangeSum]:
        self._close()
        return self.ranges


def checksum_pairs(pairs: Iterable[tuple[bytes, bytes]], range_keys: int) -> RangeHasher:
    hasher = RangeHasher(range_keys)
    for key, value in pairs:
        hasher.add(key, value)
    hasher.finish()
    return hasher


def compare_ranges(expected: list[RangeSum], actual: list[RangeSum]) -> list[str]:
    """Human-readable differences between the manifest's ranges and what was recomputed."""
    problems: list[str] = []
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            problems.append(
                f"checksum range {i} (keys {want.first[:40]}..{want.last[:40]}, {want.count} keys) differs"
                f" from the manifest: got {got.count} keys {got.first[:40]}..{got.last[:40]}"
                f" sha256 {got.sha256[:16]} != {want.sha256[:16]}"
            )
            if len(problems) >= 5:
                break
    if len(expected) != len(actual):
        problems.append(f"the manifest lists {len(expected)} checksum ranges, the data has {len(actual)}")
    return problems


def iter_sqlite_kv(conn: object, batch: int = 2000) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a SQLite store file's kv table in key order (a sqlite3 connection)."""
    import sqlite3

    assert isinstance(conn, sqlite3.Connection)
    last: bytes | None = None
    while True:
        if last is None:
            rows = conn.execute("SELECT key, value FROM kv ORDER BY key LIMIT ?", (batch,)).fetchall()
        else:
            rows = conn.execute(
                "SELECT key, value FROM kv WHERE key > ? ORDER BY key LIMIT ?", (last, batch)
            ).fetchall()
        for key, value in rows:
            yield bytes(key), bytes(value)
        if len(rows) < batch:
            return
        last = bytes(rows[-1][0])


def manifest_summary(info: BackupInfo) -> dict[str, object]:
    m = info.manifest
    return {"id": info.id, "complete": info.complete, "kind": m.kind if m else None,
            "bytes": info.size, "keys": m.key_count if m else None}  # fmt: skip


def dumps(value: object) -> str:
    return json.dumps(value, indent=2, default=str)
