"""Commits of the SQLite store: a kernel queue for writers, and group commit.

Writers queue in the kernel: a commit takes an exclusive `flock` on `<file>-writer.lock` before
`BEGIN IMMEDIATE`, so a waiting writer (in any process) is woken the moment the previous one lets
go. Without it SQLite's busy handler makes a writer that finds the lock taken sleep and poll
(1, 2, 5 … 100 ms), which put tens of milliseconds on the tail of every contended write.
SQLite's own write lock still provides the mutual exclusion (a writer that does not queue, e.g.
an ops script, is merely waited for with busy_timeout); the queue only decides who goes next.
A holder that dies releases the lock with its file descriptor.

Group commit (what FoundationDB's commit proxies do with batches): within a process, threads
that want to commit while another thread is committing wait; the next leader takes every
waiting transaction and commits them in ONE SQLite transaction — one fsync for the batch instead
of one each. Each transaction is still checked for conflicts, in queue order, against the state
every commit before it left, including the earlier ones of its batch (and a versionstamped one
takes its own version); one that fails (1020, a too-large error) is rolled back to its SAVEPOINT
alone and its error is raised in its own thread. Nobody is answered before the
batch's COMMIT returned, so durability is unchanged.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coditect.store import errors as E
from coditect.store.errors import StoreError

# A batch stops growing past this many transaction bytes (each transaction is ≤ 10 MB itself).
BATCH_BYTES = 16_000_000

# (connection) → the transaction's commit version if it took one (a versionstamped commit), its
# conflicts checked and its writes made; raises to refuse. Inside the batch's SQLite transaction,
# so it sees the earlier members' writes.
Apply = Callable[[sqlite3.Connection], int | None]


@dataclass(slots=True)
class _Pending:
    apply: Apply
    size: int
    version: int | None = None  # a versionstamped member's commit version
    error: BaseException | None = None
    done: bool = False


class Committer:
    """The commit queue of one store handle (one per `SQLiteDatabase`)."""

    def __init__(self, lock_path: Path, pid: Callable[[], int]) -> None:
        self.lock_path = lock_path
        self._pid = pid
        self._owner = -1
        self._fd = -1
        self._init = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # Per process: a forked child gets a fresh condition (a parent thread may have held it)
        # and its own descriptor (an inherited one would share the parent's flock).
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._leading = False
        self._waiting = 0  # threads in cond.wait(): the leader notifies only when there are some
        self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._owner = self._pid()

    def __del__(self) -> None:  # the store handle is gone: so is its descriptor
        try:
            if self._fd >= 0 and self._owner == self._pid():
                os.close(self._fd)
        except Exception:  # noqa: BLE001, S110 — interpreter shutdown: module globals are gone
            pass

    def commit(self, conn: sqlite3.Connection, apply: Apply, size: int) -> int | None:
        """Commit one transaction (`apply` checks its conflicts and writes it) on `conn` or in a
        batch led by another thread; what `apply` returned, or its error raised here."""
        if self._owner != self._pid():
            with self._init:
                if self._owner != self._pid():
                    self._reset()
        me = _Pending(apply, size)
        cond = self._cond
        with cond:
            self._queue.append(me)
            while not me.done:
                if self._leading:
                    self._waiting += 1
                    cond.wait()
                    self._waiting -= 1
                    continue
                self._leading = True
                batch = self._take()
                cond.release()
                try:
                    self._run(conn, batch)
                finally:
                    cond.acquire()
                    self._leading = False
                    for pending in batch:
                        pending.done = True
                    if self._waiting:
                        cond.notify_all()
        if me.error is not None:
            raise me.error
        return me.version

    def _take(self) -> list[_Pending]:
        queue = self._queue
        if len(queue) == 1:  # the common case: nobody else is committing
            self._queue = []
            return queue
        total, n = 0, 0
        for pending in queue:
            if n and total + pending.size > BATCH_BYTES:
                break
            total += pending.size
            n += 1
        batch, self._queue = queue[:n], queue[n:]
        return batch

    def _run(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._run_locked(conn, batch)
        except BaseException as exc:  # noqa: BLE001 — the batch failed: each member not refused gets it
            for pending in batch:
                if pending.error is None:
                    pending.version, pending.error = None, exc
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _run_locked(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # the write lock stayed busy past busy_timeout
            raise StoreError(E.NOT_COMMITTED, "store busy") from exc
        try:
            committed = False
            alone = len(batch) == 1
            for pending in batch:
                if not alone:
                    conn.execute("SAVEPOINT member")
                try:
                    pending.version = pending.apply(conn)
                    committed = True
                except Exception as exc:  # noqa: BLE001 — this member's own error, raised in its thread
                    pending.error = exc
                    if not alone:
                        conn.execute("ROLLBACK TO member")
                if not alone:
                    conn.execute("RELEASE member")
            conn.execute("COMMIT" if committed else "ROLLBACK")  # ROLLBACK: every member refused
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
