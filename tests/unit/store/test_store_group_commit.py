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

    # Two read-modify-writes of k from the same state (the second must conflict with the first even
    # inside one batch), a blind write and two versionstamped ones (each takes its own version, in
    # queue order), all queued behind a writer that holds the lock.
    a, b, c, d, e = (db.create_transaction() for _ in range(5))
    for tr, value in ((a, b"a"), (b, b"b")):
        assert tr.get(b"k") == b"0"
        tr.set(b"k", value)
    c.set(b"blind", b"c")
    for tr, key in ((d, b"stamped-d"), (e, b"stamped-e")):
        tr.set_versionstamped_value(key, bytes(10) + (0).to_bytes(4, "little"))
    results: dict[str, object] = {}

    def commit(name: str, tr: Transaction) -> None:
        try:
            tr.commit()
            results[name] = tr.get_versionstamp() if tr._stamped else "committed"
        except StoreError as exc:
            results[name] = exc.code

    fd = os.open(db._committer.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer holds the queue
    first = db.create_transaction()
    first.set(b"first", b"1")
    threads = [threading.Thread(target=commit, args=("first", first))]
    threads[0].start()
    time.sleep(0.05)  # the first thread leads and waits for the lock with its batch of one
    for queued, (name, tr) in enumerate((("a", a), ("b", b), ("c", c), ("d", d), ("e", e)), start=1):
        threads.append(threading.Thread(target=commit, args=(name, tr)))
        threads[-1].start()
        _wait_queued(db, queued)  # queue order is the order asserted below, not thread start order
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    for t in threads:
        t.join(10)

    assert batches == [1, 5]
    assert results["b"] == 1020  # refused alone: a, c, d and e of its batch committed
    assert results["first"] == results["a"] == results["c"] == "committed"
    assert db.read(b"k") == b"a"
    assert db.read(b"blind") == b"c"
    assert db.read(b"stamped-d") == results["d"]
    assert db.read(b"stamped-e") == results["e"]
    versions = [int.from_bytes(results[n][:8], "big") for n in ("d", "e")]  # type: ignore[index]
    assert versions == [1, 2]  # the only versioned commits of this store, in queue order


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
