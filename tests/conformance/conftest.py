"""The conformance suite runs on every backend: SQLite always, FoundationDB when FDB_CLUSTER_FILE is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coditect.keyspace import Subspace
from coditect.store import Database, open_store


@dataclass
class Store:
    """A backend under test; every key a test touches lives under `ns` (a random prefix)."""

    db: Database
    url: str
    ns: Subspace

    @property
    def prefix(self) -> bytes:
        return self.ns.raw_prefix

    def k(self, raw: bytes) -> bytes:
        return self.ns.raw_prefix + raw


def _url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'store.db'}"
    cluster_file = os.environ.get("FDB_CLUSTER_FILE")
    if not cluster_file:
        pytest.skip("FoundationDB backend: set FDB_CLUSTER_FILE to a cluster file (and install libfdb_c)")
    return f"fdb://{Path(cluster_file).resolve()}"


@pytest.fixture(params=["sqlite", "fdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = _url(request.param, tmp_path)
    db = open_store(url)
    ns = Subspace(("conformance", uuid.uuid4().hex))
    try:
        yield Store(db, url, ns)
    finally:
        db.faults.conflicts = db.faults.commit_unknown_after = 0
        db.transact(lambda tr: tr.clear_range_startswith(ns.raw_prefix))
        db.close()
