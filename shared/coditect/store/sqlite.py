"""The embedded default: one SQLite file (WAL) with FoundationDB's semantics and limits.

How serializability is kept across processes (optimistic, like FoundationDB, but checked against
state instead of a log of write ranges): reads run in a SQLite read transaction, i.e. one WAL
snapshot, and a transaction remembers what its conflicting reads returned there. A commit takes
SQLite's write lock (`BEGIN IMMEDIATE`, which reads the newest state), reads the same keys and
ranges again and fails with 1020 when any answer differs; otherwise it applies its buffered
mutations and commits. Every read it depended on is then still true at the moment it commits, so
it is equivalent to running alone at that moment: serializable. A commit writes only its own keys
(no commit log, no counter row: one page per single-key commit). The difference from FoundationDB,
which compares write ranges: a concurrent write that leaves a value as it was (the same bytes
written again, a key created and deleted) is not a conflict — nothing the transaction read
changed. Only a commit with versionstamped mutations takes a version (the `meta` counter).

Commits are queued in the kernel and grouped (one fsync per batch of concurrent commits of a
process): see `coditect.store.sqlite_commit`.

Durability: `synchronous=FULL` by default (every commit fsyncs the WAL, survives power loss);
`sqlite:///path?synchronous=NORMAL` trades the last commits on power loss (never on a process
crash or `kill -9`) for throughput.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from coditect.store import errors as E
from coditect.store import space
from coditect.store.base import Database, KeyValue, Transaction, _check_key, add_le
from coditect.store.errors import StoreError
from coditect.store.sqlite_commit import Committer
from coditect.store.versionstamp import fill, make_stamp

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('version', 0);
"""
# A store written before state checks (archive format 2) has a commit log whose newest row is the
# counter: opening it moves that counter into `meta` and drops the log, in one write transaction.
_MIGRATE = (
    "UPDATE meta SET value = max(value, (SELECT ifnull(max(version), 0) FROM commits)) WHERE name = 'version'",
    "DROP TABLE commits",
    "DELETE FROM meta WHERE name = 'pruned'",
)
SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
VERSION_SQL = "SELECT value FROM meta WHERE name = 'version'"  # the newest versionstamped commit's
_STAMP_SQL = "UPDATE meta SET value = value + 1 WHERE name = 'version' RETURNING value"
_RANGE_SQL = {
    reverse: f"SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key {order} LIMIT ?"  # noqa: S608
    for reverse, order in ((False, "ASC"), (True, "DESC"))
}
_GET_SQL = "SELECT value FROM kv WHERE key = ?"
_SPAN_SQL = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key"
_UNSET = object()
# The current pid without a system call per transaction; refreshed in a forked child.
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))
_notice_lock = threading.Lock()
_noticed = False


def _value(conn: sqlite3.Connection, key: bytes) -> bytes | None:
    row = conn.execute(_GET_SQL, (key,)).fetchone()
    return None if row is None else bytes(row[0])


def _data_version(conn: sqlite3.Connection) -> int:
    """Changes when another connection (of any process) commits: SQLite's `PRAGMA data_version`."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


_Spans = list[tuple[bytes, bytes, list[KeyValue]]]


class SQLiteTransaction(Transaction):
    """Reads from one WAL snapshot; mutations are buffered until commit."""

    def __init__(self, db: SQLiteDatabase) -> None:
        super().__init__(db)
        self._sqlite = db
        # Checked out on first use, returned on release: several transactions may be open in
        # one thread at once (as on FoundationDB), each needs its own SQLite connection.
        self._conn: sqlite3.Connection | None = None
        self._reading = False  # a read transaction (the snapshot) is open on `_conn`
        # What each conflicting point read returned: the commit reads the key again and compares.
        self._seen: dict[bytes, bytes | None] = {}
        self._first_key: bytes | None = None  # read before any snapshot was pinned
        self._spans: dict[tuple[bytes, bytes], list[KeyValue]] = {}  # likewise for ranges (`_saw`)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._sqlite._checkout()
        return self._conn

    def _begin_read(self) -> sqlite3.Connection:
        conn = self._connection()
        if not self._reading:
            conn.execute("BEGIN")  # deferred: the statement that follows pins the snapshot
            self._reading = True
            if self._first_key is not None:
                # The single autocommit read (see `_read`) must hold in this snapshot too, or the
                # transaction would see two states: 1020 at the read, retried like a conflict.
                if _value(conn, self._first_key) != self._seen[self._first_key]:
                    raise StoreError(E.NOT_COMMITTED, "a value read earlier in this transaction changed")
        return conn

    def _end_read(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._reading = False

    def _read(self, key: bytes, snapshot: bool = False) -> bytes | None:
        if not self._reading and self._first_key is None and not snapshot:
            # The transaction's first read: one autocommit statement is a snapshot by itself, so a
            # one-read transaction costs one statement (no BEGIN/ROLLBACK). A later read checks it
            # in `_begin_read`: if its key changed in between, that raises 1020 at the read, where
            # FoundationDB would fail the commit (a conflicting non-snapshot read) — retried the same
            # way by `transact`. A snapshot first read takes no conflict, so it must never cause
            # one: it uses the pinned snapshot.
            value = _value(self._sqlite._reader(), key)
            self._first_key = key
        else:
            value = _value(self._begin_read(), key)
        if not snapshot:
            self._seen[key] = value
        return value

    def _read_range(self, begin: bytes, end: bytes, reverse: bool, limit: int = 0) -> Iterator[KeyValue]:
        # Fetched in growing batches, each one complete, so no statement is left pending
        # when the caller stops early (a pending SELECT would block the later COMMIT).
        conn = self._begin_read()
        batch = max(limit, 64) if limit else 1024
        rows = self._batch(conn, begin, end, reverse, batch)
        if len(rows) < batch:
            return iter(rows)  # the whole range in one statement: no generator on the hot path
        return itertools.chain(rows, self._more(conn, begin, end, reverse, batch, rows[-1][0]))

    def _more(
        self, conn: sqlite3.Connection, lo: bytes, hi: bytes, reverse: bool, batch: int, last: bytes
    ) -> Iterator[KeyValue]:
        while True:
            if reverse:
                hi = last
            else:
                lo = last + b"\x00"
            batch = min(batch * 4, 16384)
            rows = self._batch(conn, lo, hi, reverse, batch)
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1][0]

    @staticmethod
    def _batch(conn: sqlite3.Connection, lo: bytes, hi: bytes, reverse: bool, n: int) -> list[KeyValue]:
        # sqlite3's rows are exact tuples of bytes (BLOB columns, no row factory): the pairs as they
        # are, with no per-row conversion (tests/conformance/test_conformance_basic.py checks the type).
        rows: list[KeyValue] = conn.execute(_RANGE_SQL[reverse], (lo, hi, n)).fetchall()
        return rows

    def _release(self) -> None:
        if self._conn is None:  # already released (commit, then the retry loop's finally)
            return
        self._end_read()
        if self._conn is not None:
            self._sqlite._checkin(self._conn)
            self._conn = None

    def _saw(self, begin: bytes, end: bytes, pairs: list[KeyValue], reverse: bool) -> None:
        # A copy: `pairs` is the list handed to the caller, who may change it.
        self._spans[begin, end] = pairs[::-1] if reverse else pairs.copy()

    def _read_state(self) -> tuple[dict[bytes, bytes | None], _Spans]:
        """What this transaction's read-conflict ranges hold at its snapshot: each key's value
        (kept from its read, or read now) and each wider range's pairs (read now)."""
        points: dict[bytes, bytes | None] = {}
        spans: _Spans = []
        for begin, end in self._read_ranges:
            if end == begin + b"\x00":
                if begin not in points:
                    points[begin] = (
                        self._seen[begin] if begin in self._seen else _value(self._begin_read(), begin)
                    )
            else:
                pairs = self._spans.get((begin, end))
                if pairs is None:  # a read merged with this transaction's writes: read it again here
                    pairs = self._begin_read().execute(_SPAN_SQL, (begin, end)).fetchall()
                spans.append((begin, end, pairs))
        return points, spans

    def _commit(self) -> bytes | None:
        conn = self._connection()
        points, spans = self._read_state() if self._read_ranges else ({}, [])
        # Where the state was read: this connection's view of other connections' commits, and its own.
        pinned = (_data_version(conn), conn.total_changes) if self._reading and (points or spans) else None
        self._end_read()
        guard = self._sqlite.space
        lean = guard.low()
        if lean and not space.is_freeing():
            raise space.StoreFull()  # keep what is left for deletes and GC
        if lean:
            # A delete on a full disk (store.space): do not zero every freed page, and do not let
            # the commit's automatic checkpoint grow the database file into the space it needs.
            conn.execute("PRAGMA secure_delete=FAST")
            conn.execute("PRAGMA wal_autocheckpoint=0")

        own = conn

        def check_and_apply(conn: sqlite3.Connection) -> int | None:
            # Under the write lock, at the newest state: every read must still give what it gave.
            # Nothing can have changed when the batch runs on the connection that pinned the snapshot
            # (every read holds there: a single first read was checked when it was pinned), no other
            # connection committed since (`data_version`), and no earlier member of this batch wrote.
            if pinned is not None and conn is own and pinned == (_data_version(conn), conn.total_changes):
                points.clear()
                spans.clear()
            for key, value in points.items():
                if _value(conn, key) != value:
                    raise StoreError(E.NOT_COMMITTED)
            for begin, end, rows in spans:
                if conn.execute(_SPAN_SQL, (begin, end)).fetchall() != rows:
                    raise StoreError(E.NOT_COMMITTED)
            if not self._stamped:
                self._apply(conn, None)
                return None
            # The versionstamp goes into keys or values: this commit takes the next version first.
            version = int(conn.execute(_STAMP_SQL).fetchall()[0][0])
            self._apply(conn, make_stamp(version))
            return version

        try:
            version = self._sqlite._committer.commit(conn, check_and_apply, self._size)
        except BaseException as exc:
            # The batch was rolled back: a full disk refused it (at BEGIN, a write or COMMIT).
            cause = exc.__cause__ if isinstance(exc, StoreError) else None
            if space.is_full(exc) or (cause is not None and space.is_full(cause)):
                log.warning("store: commit refused by a full disk: %s", exc)
                raise self._full(guard) from None
            raise
        finally:
            if lean:
                conn.execute(f"PRAGMA secure_delete={self._sqlite.secure_delete}")
                conn.execute("PRAGMA wal_autocheckpoint=1000")
        return None if version is None else make_stamp(version)

    @staticmethod
    def _full(guard: space.SpaceGuard) -> Exception:
        """What a commit that hit a full disk raises (nothing was committed): freeing work retries
        once the reserve is released (1020 is retried by `transact`); anything else is StoreFull."""
        if space.is_freeing() and guard.release():
            return StoreError(E.NOT_COMMITTED, "the disk was full; retrying on the released reserve")
        return space.StoreFull()

    def _apply(self, conn: sqlite3.Connection, stamp: bytes | None) -> None:
        for begin, end in self._cleared:
            conn.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (begin, end))
        for key, (kind, arg) in self._writes.items():
            if kind == "set":
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, arg))
            elif kind == "clear":
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:  # atomic add against the value at commit time: no read conflict
                assert arg is not None
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, add_le(_value(conn, key), arg)))
        for kind, key, value, clears_before in self._stamped:
            assert stamp is not None  # made by the commit whenever there are stamped mutations
            if kind == "key":
                key = fill(key, stamp)
                if any(b <= key < e for b, e in self._cleared[clears_before:]):
                    continue  # a range clear issued after it removes it, as on FoundationDB
            else:
                value = fill(value, stamp)
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


class SQLiteDatabase(Database):
    """A SQLite file shared by many processes; one connection per thread per process."""

    def __init__(self, path: Path, synchronous: str = "FULL", reserve_bytes: int = 0) -> None:
        super().__init__()
        if synchronous.upper() not in SYNC_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNC_LEVELS)}")
        self.path = path
        self.synchronous = synchronous.upper()
        self.url = f"sqlite://{path}"
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._committer = Committer(path.with_name(path.name + "-writer.lock"), lambda: _pid[0])
        self.space = space.SpaceGuard(path.parent, reserve_bytes, self._reusable_bytes)
        self.space.ensure()
        conn = self._checkout()
        # The build's default (Debian's: 1, zero every freed page); lowered only for deletes on a
        # full disk, where zeroing would need space the disk no longer has.
        self.secure_delete = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
        if not _has_schema(conn):  # else no write lock is taken at open (every cold start opens)
            _create_schema(conn)
        self._checkin(conn)
        _notice()

    def _reusable_bytes(self) -> int:
        """Bytes on the database's freelist: pages deletes freed, reused before the file grows."""
        conn = self._reader()
        (pages,) = conn.execute("PRAGMA freelist_count").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
        return int(pages) * int(size)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _pool(self) -> list[sqlite3.Connection]:
        # Idle connections of this thread. A connection must not cross a fork: key by pid too.
        local = self._local
        if getattr(local, "pid", None) != _pid[0]:
            local.free, local.pid = [], _pid[0]
        free: list[sqlite3.Connection] = local.free
        return free

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for single autocommit reads; it never holds a transaction,
        so it needs no checkout (the cheapest path for one-read transactions)."""
        local = self._local
        if getattr(local, "reader_pid", None) != _pid[0]:
            local.reader, local.reader_pid = self._open(), _pid[0]
        reader: sqlite3.Connection = local.reader
        return reader

    def read(self, key: bytes) -> bytes | None:
        # One autocommit SELECT is one WAL snapshot: the value at the latest committed version,
        # as a one-read transaction's would be (no BEGIN, no read version, no commit needed).
        _check_key(key)
        return _value(self._reader(), key)

    def _checkout(self) -> sqlite3.Connection:
        free = self._pool()
        return free.pop() if free else self._open()

    def _checkin(self, conn: sqlite3.Connection) -> None:
        free = self._pool()
        if len(free) < 4:
            free.append(conn)
        else:
            conn.close()

    def create_transaction(self) -> SQLiteTransaction:
        return SQLiteTransaction(self)

    def watch(self, key: bytes, timeout: float, *, last_seen: bytes | object | None = _UNSET) -> bool:
        # `PRAGMA data_version` changes when another connection (any process) commits, so the
        # key itself is only re-read after a commit somewhere.
        conn = self._open()
        try:
            seen = _value(conn, key) if last_seen is _UNSET else last_seen
            deadline = time.monotonic() + timeout
            data_version = _data_version(conn)
            if _value(conn, key) != seen:
                return True
            delay = 0.005
            while time.monotonic() < deadline:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 0.05)
                current = _data_version(conn)
                if current != data_version:
                    data_version = current
                    if _value(conn, key) != seen:
                        return True
            return False
        finally:
            conn.close()

    def close(self) -> None:
        """Close this thread's idle connections."""
        free = self._pool()
        while free:
            free.pop().close()
        if getattr(self._local, "reader_pid", None) is not None:
            self._local.reader.close()
            self._local.reader_pid = None


def _has_schema(conn: sqlite3.Connection) -> bool:
    """Whether SCHEMA is in place: its tables and counter row, and no commit log left to migrate."""
    try:
        (tables, log, rows) = conn.execute(
            "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('kv', 'meta')), "
            "(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'commits'), "
            "(SELECT count(*) FROM meta WHERE name = 'version')"
        ).fetchone()
    except sqlite3.OperationalError:  # no meta table yet
        return False
    return int(tables) == 2 and int(log) == 0 and int(rows) == 1


def _create_schema(conn: sqlite3.Connection) -> None:
    """Apply SCHEMA and migrate a store that still has a commit log, in one write transaction."""
    conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commits'").fetchone():
            for statement in _MIGRATE:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _notice() -> None:
    global _noticed
    with _notice_lock:
        if not _noticed:
            _noticed = True
            log.info("store: embedded SQLite default, not for production")
