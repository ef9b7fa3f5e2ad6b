"""The SQLite store's commit counter lives in its commit log: a commit writes its keys and its log
row, no counter row (`coditect.store.sqlite_commit.VERSION_EXPR`); the `meta` row is only a floor."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest

from coditect.ops.transfer import advance_sqlite_version
from coditect.store import StoreError, open_store
from coditect.store.sqlite import LOG_RETENTION_SECONDS, VERSION_SQL, SQLiteDatabase, SQLiteTransaction
from coditect.store.sqlite_commit import PRUNE_EVERY


def _store(tmp_path: Path) -> SQLiteDatabase:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")
    assert isinstance(db, SQLiteDatabase)
    return db


def _commit(db: SQLiteDatabase, key: bytes) -> int:
    tr = db.create_transaction()
    tr.set(key, b"v")
    tr.commit()
    version: int = struct.unpack(">QH", tr.get_versionstamp())[0]
    return version


def _meta_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()[0])


def _wal_frames(db: SQLiteDatabase) -> int:
    wal = db.path.with_name(db.path.name + "-wal")
    page = int(db._reader().execute("PRAGMA page_size").fetchone()[0])
    return (wal.stat().st_size - 32) // (page + 24) if wal.exists() and wal.stat().st_size else 0


def _prune_everything(db: SQLiteDatabase) -> None:
    """Prune the commit log from another connection at a `now` that makes every row older than
    the retention: the log is emptied."""
    conn = sqlite3.connect(db.path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        SQLiteTransaction._prune(conn, now=4e9 + LOG_RETENTION_SECONDS)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_commits_advance_the_counter_without_writing_a_counter_row(tmp_path: Path) -> None:
    db = _store(tmp_path)
    versions = [_commit(db, b"k%d" % i) for i in range(5)]
    assert versions == [1, 2, 3, 4, 5]
    assert _meta_version(db.path) == 0  # the floor of a new store, untouched by commits
    assert db._reader().execute(VERSION_SQL).fetchone()[0] == 5
    assert db.transact(lambda tr: tr.get(b"k4")) == b"v"


def test_a_single_key_commit_appends_two_pages_to_the_wal(tmp_path: Path) -> None:
    db = _store(tmp_path)
    _commit(db, b"warm")  # the first commit may initialise pages of its own
    before = _wal_frames(db)
    for i in range(4):
        _commit(db, b"key%d" % i)
    # Each commit: the kv leaf and the commit-log leaf (a counter row in `meta` made it three).
    assert _wal_frames(db) - before == 4 * 2


def test_the_meta_floor_wins_when_it_is_ahead_of_the_log(tmp_path: Path) -> None:
    # A restore advances the counter past its source's versions (ops.transfer), and a store
    # written before the counter moved to the log keeps its counter in `meta`.
    db = _store(tmp_path)
    assert _commit(db, b"a") == 1
    advance_sqlite_version(db.path, 1000)
    assert _commit(db, b"b") == 1001
    assert _commit(db, b"c") == 1002
    assert _meta_version(db.path) == 1000


def test_pruning_the_whole_log_never_takes_the_counter_back(tmp_path: Path) -> None:
    db = _store(tmp_path)
    for i in range(3):
        _commit(db, b"k%d" % i)
    _prune_everything(db)
    assert db._reader().execute("SELECT count(*) FROM commits").fetchone()[0] == 0
    assert _meta_version(db.path) == 3
    assert _commit(db, b"after") == 4


def test_a_reader_pinned_before_a_commit_keeps_its_version_and_conflicts(tmp_path: Path) -> None:
    db = _store(tmp_path)
    _commit(db, b"k")
    reader = db.create_transaction()
    assert reader.get(b"k") == b"v"
    reader.get(b"other")  # a second read pins a snapshot at the counter read with it
    _commit(db, b"k")
    reader.set(b"out", b"1")
    with pytest.raises(StoreError) as raised:
        reader.commit()
    assert raised.value.code == 1020


def test_a_commit_whose_read_version_was_pruned_from_the_log_is_too_old(tmp_path: Path) -> None:
    # The conflicting commit's log row is pruned before the reader commits: the log can no longer
    # show it, so the commit must be refused as too old (1007), never let through as conflict-free.
    db = _store(tmp_path)
    _commit(db, b"k")
    reader = db.create_transaction()
    assert reader.get(b"k") == b"v"
    reader.get(b"other")
    _commit(db, b"k")
    _prune_everything(db)
    reader.set(b"out", b"1")
    with pytest.raises(StoreError) as raised:
        reader.commit()
    assert raised.value.code == 1007
    assert db.read(b"out") is None


def test_a_versionstamped_commit_gets_the_version_of_its_log_row(tmp_path: Path) -> None:
    # A commit with a versionstamped mutation reads its version before writing; the log row computes
    # it again in its own statement: both must be the same, right after the blind commit before it.
    db = _store(tmp_path)
    assert _commit(db, b"blind") == 1
    tr = db.create_transaction()
    tr.set_versionstamped_value(b"stamped", b"\x00" * 10 + struct.pack("<I", 0))
    tr.commit()
    assert struct.unpack(">QH", tr.get_versionstamp()) == (2, 0)
    assert db.read(b"stamped") == tr.get_versionstamp()
    assert db._reader().execute("SELECT max(version) FROM commits").fetchone()[0] == 2


def test_the_log_is_pruned_each_time_the_counter_crosses_a_multiple_of_prune_every(tmp_path: Path) -> None:
    db = _store(tmp_path)
    pruned_at: list[int] = []
    prune = db._committer._prune

    def record(conn: sqlite3.Connection, now: float) -> None:
        pruned_at.append(int(conn.execute("SELECT max(version) FROM commits").fetchone()[0]))
        prune(conn, now)

    db._committer._prune = record
    for i in range(2 * PRUNE_EVERY + 10):
        _commit(db, b"k%d" % i)
    assert pruned_at == [PRUNE_EVERY, 2 * PRUNE_EVERY]


def test_a_single_first_read_whose_version_was_pruned_is_too_old_at_the_next_read(tmp_path: Path) -> None:
    # The first read is one autocommit statement; the second pins a snapshot and re-validates the
    # first against the log since its version. Once the log no longer reaches back that far, the
    # first read cannot be vouched for: 1007 at the second read.
    db = _store(tmp_path)
    _commit(db, b"k")
    reader = db.create_transaction()
    assert reader.get(b"k") == b"v"
    _commit(db, b"elsewhere")  # the counter moves, so the second read must re-validate
    _prune_everything(db)
    with pytest.raises(StoreError) as raised:
        reader.get(b"other")
    assert raised.value.code == 1007
