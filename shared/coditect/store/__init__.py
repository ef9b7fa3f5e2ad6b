"""The FoundationDB-semantics store: `open_store(url)` returns a `Database`.

URLs: `sqlite:///abs/path/data.db` (the embedded default; `?synchronous=NORMAL|FULL`),
`fdb://` (default cluster file) or `fdb:///path/to/fdb.cluster`. The configured one is
`Settings.store_url` (`CODITECT_STORE`, else `<data dir>/store.db`).
The SQLite store keeps `CODITECT_STORE_RESERVE_BYTES` (default 16 MiB; 0 = none) of disk in
reserve for deletes and GC on a full disk (`coditect.store.space`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from coditect.store.base import Database, KeyValue, SnapshotView, Transaction, strinc, transactional
from coditect.store.errors import StoreError

__all__ = [
    "Database",
    "KeyValue",
    "SnapshotView",
    "StoreError",
    "Transaction",
    "open_store",
    "strinc",
    "transactional",
]

SCHEMES = ("sqlite", "fdb")


def open_store(url: str) -> Database:
    """Open the store named by `url` (see the module docstring)."""
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(
                f"sqlite store URLs take an absolute path: sqlite:///abs/path/data.db, not {url!r}"
            )
        from coditect.config import get_settings
        from coditect.store.sqlite import SQLiteDatabase

        reserve = get_settings().store_reserve_bytes
        return SQLiteDatabase(
            Path(parts.path), synchronous=options.get("synchronous", "FULL"), reserve_bytes=reserve
        )
    if parts.scheme == "fdb":
        from coditect.store.fdb_backend import FDBDatabase, cluster_file_from_url

        return FDBDatabase(cluster_file_from_url(url))
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} in {url!r}; accepted: {', '.join(SCHEMES)}")
