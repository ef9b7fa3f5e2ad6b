"""The FoundationDB-semantics store: `open_store(url)` returns a `Database`.

URLs: `sqlite:///abs/path/data.db` (the embedded default; `?synchronous=NORMAL|FULL`),
`fdb://` (default cluster file) or `fdb:///path/to/fdb.cluster`. `None` reads
`CODITECT_STORE`, and when that is unset uses `<CODITECT_DATA_DIR or .coditect>/store.db`.
The SQLite store keeps `CODITECT_STORE_RESERVE_BYTES` (default 16 MiB; 0 = none) of disk in
reserve for deletes and GC on a full disk (`coditect.store.space`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from coditect.store import space
from coditect.store.base import Database, KeyValue, SnapshotView, Transaction, strinc, transactional
from coditect.store.errors import StoreError

__all__ = [
    "Database",
    "KeyValue",
    "SnapshotView",
    "StoreError",
    "Transaction",
    "default_url",
    "open_store",
    "strinc",
    "transactional",
]

SCHEMES = ("sqlite", "fdb")


def default_url() -> str:
    data_dir = Path(os.environ.get("CODITECT_DATA_DIR") or ".coditect").resolve()
    return f"sqlite://{data_dir / 'store.db'}"


def open_store(url: str | None = None) -> Database:
    """Open the store named by `url` (see the module docstring)."""
    url = url or os.environ.get("CODITECT_STORE") or default_url()
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(
                f"sqlite store URLs take an absolute path: sqlite:///abs/path/data.db, not {url!r}"
            )
        from coditect.store.sqlite import SQLiteDatabase

        reserve = int(os.environ.get("CODITECT_STORE_RESERVE_BYTES", space.DEFAULT_RESERVE_BYTES))
        return SQLiteDatabase(
            Path(parts.path), synchronous=options.get("synchronous", "FULL"), reserve_bytes=reserve
        )
    if parts.scheme == "fdb":
        from coditect.store.fdb_backend import FDBDatabase, cluster_file_from_url

        return FDBDatabase(cluster_file_from_url(url))
    raise ValueError(f"unknown store URL scheme {parts.scheme!r} in {url!r}; accepted: {', '.join(SCHEMES)}")
