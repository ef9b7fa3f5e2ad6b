"""The SQLite store checks a commit's reads against the newest state (`coditect.store.sqlite`): a
commit writes only its keys (no commit log, no counter row), and only a versionstamped commit takes
a version, from the `meta` counter."""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from coditect.ops.transfer import advance_sqlite_version
from coditect.store import StoreError, open_store
from coditect.store.base import Transaction
from coditect.store.sqlite import VERSION_SQL, SQLiteDatabase, _create_schema, _has_schema
from coditect.store.sqlite_commit import Apply, _Pending

STAMPED_VALUE = b"\x00" * 10 + struct.pack("<I", 0)


def _store(tmp_path: Path) -> SQLiteDatabase:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")
    assert isinstance(db, SQLiteDatabase)
    return db


def _stamped_commit(db: SQLiteDatabase, key: bytes) -> int:
    tr = db.create_transaction()
    tr.set_versionstamped_value(key, STAMPED_VALUE)
    tr.commit()
    assert db.read(key) == tr.get_versionstamp()
    version: int = struct.unpack(">QH", tr.get_versionstamp())[0]
    return version


def _wal_frames(db: SQLiteDatabase) -> int:
    wal = db.path.with_name(db.path.name + "-wal")
    page = int(db._reader().execute("PRAGMA page_size").fetchone()[0])
    return (wal.stat().st_size - 32) // (page + 24) if wal.exists() and wal.stat().st_size else 0


def _refused(tr: Transaction) -> int:
    with pytest.raises(StoreError) as raised:
        tr.commit()
    return raised.value.code


# -- what a commit writes ------------------------------------------------------------------------
def test_a_single_key_commit_appends_one_page_to_the_wal_and_takes_no_version(tmp_path: Path) -> None:
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"warm", b"v"))  # the first commit may initialise pages of its own
    before = _wal_frames(db)
    for i in range(4):
        tr = db.create_transaction()
        tr.set(b"key%d" % i, b"v")
        tr.commit()
        with pytest.raises(RuntimeError, match="versionstamped"):
            tr.get_versionstamp()
    assert _wal_frames(db) - before == 4  # the kv leaf alone (a commit-log row made it two)
    assert db._reader().execute(VERSION_SQL).fetchone()[0] == 0


def test_versionstamped_commits_take_consecutive_versions_from_the_counter(tmp_path: Path) -> None:
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"blind", b"v"))
    assert [_stamped_commit(db, b"s%d" % i) for i in range(3)] == [1, 2, 3]
    advance_sqlite_version(db.path, 1000)  # a restore moves the counter past its source's versions
    assert _stamped_commit(db, b"after") == 1001
    assert db._reader().execute(VERSION_SQL).fetchone()[0] == 1001


def test_a_store_with_a_commit_log_is_migrated_at_open(tmp_path: Path) -> None:
    # A file of the previous format: the counter is the newest commit-log row, `meta` only a floor.
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE commits (version INTEGER PRIMARY KEY, at REAL NOT NULL, ranges BLOB NOT NULL);"
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('version', 5), ('pruned', 30);"
        "INSERT INTO commits VALUES (40, 0, x''), (41, 0, x'');"
        "INSERT INTO kv VALUES (x'6b', x'76');"
    )
    conn.close()
    db = _store(tmp_path)
    tables = {row[0] for row in db._reader().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"kv", "meta"}
    assert dict(db._reader().execute("SELECT name, value FROM meta").fetchall()) == {"version": 41}
    assert db.read(b"k") == b"v"
    assert _stamped_commit(db, b"next") == 42  # never a version the old log had handed out
    # Functions that open the old file at the same time each run the migration under the write lock;
    # the one that comes second finds no log left and changes nothing.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert _has_schema(conn)  # so later opens take no write lock
        _create_schema(conn)
        assert dict(conn.execute("SELECT name, value FROM meta").fetchall()) == {"version": 42}
    finally:
        conn.close()


# -- what a commit checks --------------------------------------------------------------------------
Race = Callable[[SQLiteDatabase], None]


def _race(tmp_path: Path, read: Callable[[Transaction], object], race: Race) -> int | None:
    """Read in a transaction, let another commit `race`, then write and commit: the error code, or
    None when it committed (and then its write is there)."""
    db = _store(tmp_path)
    db.transact(lambda tr: (tr.set(b"a", b"1"), tr.set(b"c", b"3"), tr.set(b"e", b"5")))
    tr = db.create_transaction()
    read(tr)
    race(db)
    tr.set(b"out", b"written")
    try:
        tr.commit()
    except StoreError as exc:
        assert db.read(b"out") is None  # refused whole
        return exc.code
    assert db.read(b"out") == b"written"
    return None


def _commit_elsewhere(*writes: tuple[bytes, bytes | None]) -> Race:
    def race(db: SQLiteDatabase) -> None:
        def write(tr: Transaction) -> None:
            for key, value in writes:
                if value is None:
                    tr.clear(key)
                else:
                    tr.set(key, value)

        db.transact(write)

    return race


def _created_and_deleted(db: SQLiteDatabase) -> None:
    _commit_elsewhere((b"b", b"2"))(db)
    _commit_elsewhere((b"b", None))(db)


@pytest.mark.parametrize(
    ("read", "race", "code"),
    [
        # a value read, changed, deleted, or left alone
        (lambda tr: tr.get(b"a"), _commit_elsewhere((b"a", b"2")), 1020),
        (lambda tr: tr.get(b"a"), _commit_elsewhere((b"a", None)), 1020),
        (lambda tr: tr.get(b"a"), _commit_elsewhere((b"b", b"2")), None),
        # an absent key read, then created
        (lambda tr: tr.get(b"b"), _commit_elsewhere((b"b", b"2")), 1020),
        # a range read, then a key created, changed or deleted inside it, or created outside it
        (lambda tr: tr.get_range(b"a", b"d"), _commit_elsewhere((b"b", b"2")), 1020),
        (lambda tr: tr.get_range(b"a", b"d"), _commit_elsewhere((b"c", b"x")), 1020),
        (lambda tr: tr.get_range(b"a", b"d"), _commit_elsewhere((b"a", None)), 1020),
        (lambda tr: tr.get_range(b"a", b"d"), _commit_elsewhere((b"d", b"4")), None),
        (lambda tr: tr.get_range(b"a", b"d", reverse=True), _commit_elsewhere((b"b", b"2")), 1020),
        # a read stopped by its limit conflicts only up to where it stopped (as on FoundationDB)
        (lambda tr: tr.get_range(b"a", b"z", limit=1), _commit_elsewhere((b"b", b"2")), None),
        (lambda tr: tr.get_range(b"a", b"z", limit=2), _commit_elsewhere((b"b", b"2")), 1020),
        # snapshot reads take no conflict
        (lambda tr: tr.snapshot.get(b"a"), _commit_elsewhere((b"a", b"2")), None),
        (lambda tr: tr.snapshot.get_range(b"a", b"d"), _commit_elsewhere((b"b", b"2")), None),
        # a conflict key added without a read, after a read pinned the snapshot
        (
            lambda tr: (tr.get(b"e"), tr.get(b"c"), tr.add_read_conflict_key(b"q")),
            _commit_elsewhere((b"q", b"1")),
            1020,
        ),
        # the documented difference from FoundationDB: nothing read changed, so no conflict
        (lambda tr: tr.get(b"a"), _commit_elsewhere((b"a", b"1")), None),
        (lambda tr: tr.get_range(b"a", b"d"), _created_and_deleted, None),
    ],
)
def test_a_commit_is_refused_exactly_when_something_it_read_changed(
    tmp_path: Path, read: Callable[[Transaction], object], race: Race, code: int | None
) -> None:
    assert _race(tmp_path, read, race) == code


def test_a_read_of_a_key_the_transaction_added_to_is_checked(tmp_path: Path) -> None:
    # `get` of a key with a pending atomic add reads the committed value below it: a conflicting read.
    def read(tr: Transaction) -> None:
        tr.add(b"a", 1)
        tr.get(b"a")

    assert _race(tmp_path, read, _commit_elsewhere((b"a", b"9"))) == 1020


def test_a_single_first_read_that_changed_is_refused_at_the_next_read(tmp_path: Path) -> None:
    # The first read is one autocommit statement; the second pins a snapshot in which the first must
    # still hold, or the transaction would see two states.
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"k", b"1"))
    reader = db.create_transaction()
    assert reader.get(b"k") == b"1"
    db.transact(lambda tr: tr.set(b"k", b"2"))
    with pytest.raises(StoreError) as raised:
        reader.get(b"other")
    assert raised.value.code == 1020


def test_a_reader_pinned_before_a_commit_keeps_its_snapshot_and_conflicts(tmp_path: Path) -> None:
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"k", b"1"))
    reader = db.create_transaction()
    assert reader.get(b"k") == b"1"
    reader.get(b"other")  # a second read pins the snapshot
    db.transact(lambda tr: tr.set(b"k", b"2"))
    assert reader.get(b"k") == b"1"  # its own point in time
    reader.set(b"out", b"1")
    assert _refused(reader) == 1020


def test_a_reader_that_leads_a_batch_behind_a_writer_is_checked_against_that_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch runs on its leader's connection. When the leader's own snapshot was pinned there and no
    # other connection committed since, only an earlier member of the batch can have changed what it
    # read — a write on the same connection, which `data_version` does not show: the check must.
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"k", b"1"))
    reader = db.create_transaction()
    assert reader.get_range(b"k", b"l") == [(b"k", b"1")]  # pins the reader's snapshot
    reader.set(b"out", b"written")
    writer = db.create_transaction()
    writer.set(b"k", b"2")
    queued: list[_Pending] = []
    committer = db._committer

    def commit(conn: sqlite3.Connection, apply: Apply, size: int) -> int | None:
        if not queued:  # the writer waits in the queue
            queued.append(_Pending(apply, size))
            return None
        me = _Pending(apply, size)
        committer._run(conn, [queued[0], me])  # the reader leads: the writer, then itself
        if me.error is not None:
            raise me.error
        return me.version

    monkeypatch.setattr(committer, "commit", commit)
    writer.commit()
    assert _refused(reader) == 1020
    assert db.read(b"k") == b"2"
    assert db.read(b"out") is None


def test_a_reader_whose_snapshot_nobody_changed_commits_without_reading_again(tmp_path: Path) -> None:
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"k", b"1"))
    reader = db.create_transaction()
    reader.get_range(b"k", b"l")
    reader.set(b"out", b"written")
    statements: list[str] = []
    conn = reader._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    reader.commit()
    conn.set_trace_callback(None)
    assert db.read(b"out") == b"written"
    assert not any(s.startswith("SELECT key, value") for s in statements)  # the range was not read again


def test_what_a_caller_does_to_the_rows_it_got_does_not_change_what_is_checked(tmp_path: Path) -> None:
    db = _store(tmp_path)
    db.transact(lambda tr: tr.set(b"k", b"1"))
    tr = db.create_transaction()
    rows = tr.get_range(b"k", b"l")
    rows.clear()
    db.transact(lambda other: other.set(b"elsewhere", b"1"))  # a commit since: the range is read again
    tr.set(b"out", b"written")
    tr.commit()
    assert db.read(b"out") == b"written"
