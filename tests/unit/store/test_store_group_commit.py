"""Group commit of the SQLite store: concurrent commits of one process share one SQLite
transaction, yet each keeps its own version, conflict check and error (FoundationDB's batches)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from coditect.store import StoreError, Transaction, open_store
from coditect.store.sqlite import SQLiteDatabase
from tests.helpers import run_threads


def _wait_queued(db: SQLiteDatabase, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(db._committer._queue) < n:
        assert time.monotonic() < deadline, "threads did not queue"
        time.sleep(0.005)


def test_a_batch_commits_its_members_in_order_and_refuses_only_the_conflicting_one(tmp_path: Path) -> None:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")
    assert isinstance(db, SQLiteDatabase)
    db.transact(lambda tr: tr.set(b"k", b"0"))
    batches: list[int] = []
    run = db._committer._run_locked
    db._committer._run_locked = lambda conn, batch: (batches.append(len(batch)), run(conn, batch))[1]  # type: ignore[method-assign]

    # Two read-modify-writes of k from the same read version (the second must conflict with the
    # first even inside one batch), a blind write and a versionstamped one (its version is read
    # before its log row, after its batch's earlier rows), all queued behind a writer that holds
    # the lock.
    a, b, c, d = (db.create_transaction() for _ in range(4))
    for tr, value in ((a, b"a"), (b, b"b")):
        assert tr.get(b"k") == b"0"
        tr.set(b"k", value)
    c.set(b"blind", b"c")
    d.set_versionstamped_value(b"stamped", bytes(10) + (0).to_bytes(4, "little"))
    results: dict[str, object] = {}

    def commit(name: str, tr: Transaction) -> None:
        try:
            tr.commit()
            results[name] = tr.get_versionstamp()
        except StoreError as exc:
            results[name] = exc.code

    fd = os.open(db._committer.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer holds the queue
    first = db.create_transaction()
    first.set(b"first", b"1")
    threads = [threading.Thread(target=commit, args=("first", first))]
    threads[0].start()
    time.sleep(0.05)  # the first thread leads and waits for the lock with its batch of one
    for queued, (name, tr) in enumerate((("a", a), ("b", b), ("c", c), ("d", d)), start=1):
        threads.append(threading.Thread(target=commit, args=(name, tr)))
        threads[-1].start()
        _wait_queued(db, queued)  # queue order is the order asserted below, not thread start order
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    for t in threads:
        t.join(10)

    assert batches == [1, 4]
    assert results["b"] == 1020  # refused alone: a and c of its batch committed
    assert db.read(b"k") == b"a"
    assert db.read(b"blind") == b"c"
    stamps = [results[n] for n in ("first", "a", "c", "d")]
    assert all(isinstance(s, bytes) and len(s) == 10 for s in stamps)
    versions = [int.from_bytes(s[:8], "big") for s in stamps]  # type: ignore[index]
    assert versions == list(range(versions[0], versions[0] + 4))  # own versions, in queue order
    assert db.read(b"stamped") == results["d"]


def test_many_threads_read_modify_write_serializably(tmp_path: Path) -> None:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")

    def bump(tr: Transaction) -> None:
        tr.set(b"n", b"%d" % (int(tr.get(b"n") or b"0") + 1))
        tr.add(b"adds", 1)

    def work() -> None:
        for _ in range(40):
            db.transact(bump)

    run_threads([work] * 8, 60)
    assert db.read(b"n") == b"320"
    assert db.read(b"adds") == (320).to_bytes(8, "little")


def test_a_forked_child_commits_with_its_own_queue(tmp_path: Path) -> None:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")
    db.transact(lambda tr: tr.set(b"parent", b"1"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover — the child reports through its exit code
        try:
            db.transact(lambda tr: tr.set(b"child", b"1"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db.read(b"child") == b"1"
