"""The embedded default: one SQLite file (WAL) with FoundationDB's semantics and limits.

How serializability is kept across processes (the same optimistic scheme as FoundationDB's
resolvers): reads run in a SQLite read transaction, i.e. one WAL snapshot, whose commit counter
is the transaction's *read version*. A commit takes SQLite's write lock (`BEGIN IMMEDIATE`),
looks at the write-conflict ranges of every commit newer than its read version in the
`commits` log, and fails with 1020 when one intersects its read-conflict ranges; otherwise it
applies its buffered mutations, logs its own write ranges under the next version and commits
(the newest row of that log is the commit counter: no counter row is written per commit).
The log is pruned after 10 s: no transaction lives longer than 5 s (1007).

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
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from coditect.store import errors as E
from coditect.store import space
from coditect.store.base import Database, KeyValue, Transaction, _check_key, add_le
from coditect.store.errors import StoreError
from coditect.store.sqlite_commit import LOG_SQL, VERSION_EXPR, Committer
from coditect.store.versionstamp import fill, make_stamp

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (version INTEGER PRIMARY KEY, at REAL NOT NULL, ranges BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('version', 0), ('pruned', 0);
"""
SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
VERSION_SQL = f"SELECT {VERSION_EXPR}"
_RANGE_SQL = {
    reverse: f"SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key {order} LIMIT ?"  # noqa: S608
    for reverse, order in ((False, "ASC"), (True, "DESC"))
}
_GET_SQL = "SELECT value FROM kv WHERE key = ?"
_POINT_SQL = f"SELECT (SELECT value FROM kv WHERE key = ?), {VERSION_EXPR}"  # noqa: S608
# The prune mark, and beside it the write ranges of every commit after a read version (NULL if none).
_CONFLICTS_SQL = (
    "SELECT meta.value, commits.ranges FROM meta LEFT JOIN commits ON commits.version > ? "
    "WHERE meta.name = 'pruned'"
)
LOG_RETENTION_SECONDS = 10.0
_UNSET = object()
# The current pid without a system call per transaction; refreshed in a forked child.
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))
_notice_lock = threading.Lock()
_noticed = False


def _pack_ranges(ranges: list[tuple[bytes, bytes]]) -> bytes:
    parts = [struct.pack(">II", len(b), len(e)) + b + e for b, e in ranges]
    return b"".join(parts)


def _unpack_ranges(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 0
    while pos < len(blob):
        lb, le = struct.unpack_from(">II", blob, pos)
        pos += 8
        yield blob[pos : pos + lb], blob[pos + lb : pos + lb + le]
        pos += lb + le


def _intersects(reads: list[tuple[bytes, bytes]], writes: Iterator[tuple[bytes, bytes]]) -> bool:
    return any(rb < we and wb < re for wb, we in writes for rb, re in reads)


class SQLiteTransaction(Transaction):
    """Reads from one WAL snapshot; mutations are buffered until commit."""

    def __init__(self, db: SQLiteDatabase) -> None:
        super().__init__(db)
        self._sqlite = db
        # Checked out on first use, returned on release: several transactions may be open in
        # one thread at once (as on FoundationDB), each needs its own SQLite connection.
        self._conn: sqlite3.Connection | None = None
        self._reading = False
        self._read_version: int | None = None  # the commit counter this transaction reads at
        self._first_key: bytes | None = None  # read before any snapshot was pinned

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._sqlite._checkout()
        return self._conn

    def _begin_read(self) -> sqlite3.Connection:
        conn = self._connection()
        if not self._reading:
            conn.execute("BEGIN")
            self._reading = True
            version = int(conn.execute(VERSION_SQL).fetchone()[0])  # this also pins the snapshot
            if self._read_version is not None and version != self._read_version:
                # Move the single autocommit read (see `_read`) to `version`: valid when no commit
                # since wrote its key; the snapshot shows the log up to `version` and no further.
                assert self._first_key is not None
                first = [(self._first_key, self._first_key + b"\x00")]
                self._check_log(
                    conn, self._read_version, first, "a value read earlier in this transaction changed"
                )
            self._read_version = version
        return conn

    def _end_read(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._reading = False

    def _read(self, key: bytes, snapshot: bool = False) -> bytes | None:
        if self._read_version is None and not snapshot:
            # The transaction's first read: one autocommit statement is a snapshot by itself and
            # also returns the read version, so a one-read transaction costs one statement
            # (no BEGIN/ROLLBACK). A later read re-validates it in `_begin_read`: if its key changed
            # in between, that raises 1020 at the read, where FoundationDB would fail the commit
            # (a conflicting non-snapshot read) — retried the same way by `transact`. A snapshot
            # first read takes no conflict, so it must never cause one: it uses the pinned snapshot.
            value, version = self._sqlite._reader().execute(_POINT_SQL, (key,)).fetchone()
            self._read_version, self._first_key = int(version), key
        else:
            row = self._begin_read().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            value = None if row is None else row[0]
        return None if value is None else bytes(value)

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

    def _commit(self) -> bytes:
        conn = self._connection()
        read_version: int | None = None
        if self._read_ranges:
            if self._read_version is None:
                self._begin_read()
            read_version = self._read_version
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

        def check_and_apply(conn: sqlite3.Connection) -> int:
            if read_version is not None:
                self._check_log(conn, read_version, self._read_ranges)
            stamp = None
            if self._stamped:  # the versionstamp goes into keys or values: it is needed before the log row
                stamp = make_stamp(int(conn.execute(VERSION_SQL).fetchone()[0]) + 1)
            ranges = self._apply(conn, stamp)
            # The log row takes the next version itself (the same one, read in this SQLite transaction).
            version = conn.execute(LOG_SQL, (time.time(), _pack_ranges(ranges))).lastrowid
            assert version is not None
            return version

        try:
            return make_stamp(self._sqlite._committer.commit(conn, check_and_apply, self._size))
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

    @staticmethod
    def _full(guard: space.SpaceGuard) -> Exception:
        """What a commit that hit a full disk raises (nothing was committed): freeing work retries
        once the reserve is released (1020 is retried by `transact`); anything else is StoreFull."""
        if space.is_freeing() and guard.release():
            return StoreError(E.NOT_COMMITTED, "the disk was full; retrying on the released reserve")
        return space.StoreFull()

    @staticmethod
    def _check_log(
        conn: sqlite3.Connection, since: int, reads: list[tuple[bytes, bytes]], detail: str | None = None
    ) -> None:
        """1007 when the commit log no longer reaches back to `since`; 1020 when a commit after it
        wrote into `reads` (one statement: the prune mark and the newer log rows)."""
        rows = conn.execute(_CONFLICTS_SQL, (since,)).fetchall()
        if since < int(rows[0][0]):
            raise StoreError(E.TRANSACTION_TOO_OLD)
        for _, blob in rows:
            if blob is not None and _intersects(reads, _unpack_ranges(bytes(blob))):
                raise StoreError(E.NOT_COMMITTED, detail)

    def _apply(self, conn: sqlite3.Connection, stamp: bytes | None) -> list[tuple[bytes, bytes]]:
        for begin, end in self._cleared:
            conn.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (begin, end))
        for key, (kind, arg) in self._writes.items():
            if kind == "set":
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, arg))
            elif kind == "clear":
                conn.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:  # atomic add against the value at commit time: no read conflict
                assert arg is not None
                row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
                value = add_le(None if row is None else bytes(row[0]), arg)
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
        ranges = self.write_ranges()
        for kind, key, value, clears_before in self._stamped:
            assert stamp is not None  # made by the commit whenever there are stamped mutations
            if kind == "key":
                key = fill(key, stamp)
                if any(b <= key < e for b, e in self._cleared[clears_before:]):
                    continue  # a range clear issued after it removes it, as on FoundationDB
            else:
                value = fill(value, stamp)
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
            ranges.append((key, key + b"\x00"))
        return ranges

    @staticmethod
    def _prune(conn: sqlite3.Connection, now: float) -> None:
        row = conn.execute(
            "SELECT MAX(version) FROM commits WHERE at < ?", (now - LOG_RETENTION_SECONDS,)
        ).fetchone()
        if row and row[0] is not None:
            conn.execute("DELETE FROM commits WHERE version <= ?", (row[0],))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'pruned'", (row[0],))
            # The counter's floor (see sqlite_commit.VERSION_EXPR): never below a pruned version.
            conn.execute("UPDATE meta SET value = max(value, ?) WHERE name = 'version'", (row[0],))


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
        self._committer = Committer(
            path.with_name(path.name + "-writer.lock"), lambda: _pid[0], SQLiteTransaction._prune
        )
        self.space = space.SpaceGuard(path.parent, reserve_bytes, self._reusable_bytes)
        self.space.ensure()
        conn = self._checkout()
        # The build's default (Debian's: 1, zero every freed page); lowered only for deletes on a
        # full disk, where zeroing would need space the disk no longer has.
        self.secure_delete = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
        if not _has_schema(conn):  # else no write lock is taken at open (every cold start opens)
            conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
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
        row = self._reader().execute(_GET_SQL, (key,)).fetchone()
        return None if row is None else bytes(row[0])

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

            def read() -> bytes | None:
                row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
                return None if row is None else bytes(row[0])

            seen = read() if last_seen is _UNSET else last_seen
            deadline = time.monotonic() + timeout
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if read() != seen:
                return True
            delay = 0.005
            while time.monotonic() < deadline:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 0.05)
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != data_version:
                    data_version = current
                    if read() != seen:
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
    """Whether SCHEMA was applied already: its tables and both meta rows exist (one snapshot)."""
    try:
        (tables, rows) = conn.execute(
            "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
            "('kv', 'commits', 'meta')), (SELECT count(*) FROM meta WHERE name IN ('version', 'pruned'))"
        ).fetchone()
    except sqlite3.OperationalError:  # no meta table yet
        return False
    return int(tables) == 3 and int(rows) == 2


def _notice() -> None:
    global _noticed
    with _notice_lock:
        if not _noticed:
            _noticed = True
            log.info("store: embedded SQLite default, not for production")
