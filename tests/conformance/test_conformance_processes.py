"""Many processes on one store: atomicity, serializability, durability across kill -9, watches.

Each worker is a real process ("spawn" context, module-level bodies in `workers.py`), as every
function is its own process in production. Each join is bounded, and nothing here sleeps.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import fdb.tuple as fdbtuple
import pytest

from coditect.store import Transaction
from tests.conformance import workers
from tests.conformance.conftest import Store

ctx = multiprocessing.get_context("spawn")
JOIN_SECONDS = 120


def _run_all(target: Callable[..., None], arg_sets: list[tuple[Any, ...]]) -> None:
    procs: list[BaseProcess] = [ctx.Process(target=target, args=args) for args in arg_sets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_SECONDS)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.slow
def test_atomic_adds_from_four_processes(store: Store) -> None:
    key = store.k(b"adds")
    _run_all(workers.atomic_adds, [(store.url, key, 500)] * 4)
    assert store.db.transact(lambda tr: tr.get(key)) == (2000).to_bytes(8, "little")


@pytest.mark.slow
def test_read_modify_write_from_four_processes_is_serializable(store: Store) -> None:
    key = store.k(b"rmw")
    _run_all(workers.read_modify_write, [(store.url, key, 200)] * 4)
    assert store.db.transact(lambda tr: tr.get(key)) == b"800"


def test_reader_never_sees_a_torn_move(store: Store) -> None:
    a, b = store.k(b"a"), store.k(b"b")
    store.db.transact(lambda tr: tr.set(a, b"500"))
    store.db.transact(lambda tr: tr.set(b, b"500"))
    procs = [ctx.Process(target=workers.move_between, args=(store.url, a, b, 300, s)) for s in range(2)]
    for p in procs:
        p.start()

    def total(tr: Transaction) -> int:
        return int(tr.get(a) or b"0") + int(tr.get(b) or b"0")

    def total_by_range(tr: Transaction) -> int:
        return sum(int(value) for _, value in tr.get_range(a, b + b"\x00"))

    sums: list[int] = []
    while any(p.is_alive() for p in procs) or len(sums) < 10:
        sums.append(store.db.transact(total))
        sums.append(store.db.transact(total_by_range))
    for p in procs:
        p.join(JOIN_SECONDS)
    assert [p.exitcode for p in procs] == [0, 0]
    assert set(sums) == {1000}
    assert store.db.transact(total) == 1000


def test_kill_9_loses_no_committed_and_shows_no_uncommitted_data(store: Store) -> None:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=workers.write_then_hang, args=(store.url, store.prefix, child))
    proc.start()
    reported: list[int] = []
    while True:
        assert parent.poll(JOIN_SECONDS), "writer stopped reporting"
        msg = parent.recv()
        if msg == "staged":
            break
        reported.append(msg)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(JOIN_SECONDS)
    assert proc.exitcode == -signal.SIGKILL

    db = store.db
    entries = db.transact(lambda tr: tr.get_range(store.k(b"entry/"), store.k(b"entry0")))
    assert [int(value) for _, value in entries] == reported  # every reported commit survived
    assert db.transact(lambda tr: tr.get(store.k(b"count"))) == b"%d" % len(reported)
    assert db.transact(lambda tr: tr.get(store.k(b"uncommitted"))) is None
    db.transact(lambda tr: tr.set(store.k(b"after"), b"ok"))  # the store still takes writes
    assert db.transact(lambda tr: tr.get(store.k(b"after"))) == b"ok"


def test_versionstamped_keys_are_unique_and_commit_ordered(store: Store) -> None:
    prefix = (*store.ns.prefix, "vs")
    order = store.k(b"order")
    _run_all(workers.stamped_writes, [(store.url, prefix, order, 40)] * 4)
    kvs = store.db.transact(lambda tr: tr.get_range_startswith(fdbtuple.pack(prefix)))
    stamps = [fdbtuple.unpack(key)[-1] for key, _ in kvs]
    assert len(stamps) == 160
    assert all(isinstance(s, fdbtuple.Versionstamp) and s.is_complete() for s in stamps)
    assert len({(s.tr_version, s.user_version) for s in stamps}) == 160  # unique
    # Keys sort by versionstamp; the values were assigned in serialized commit order.
    assert [int(value) for _, value in kvs] == list(range(160))


def test_watch_fires_on_another_process_commit(store: Store) -> None:
    key = store.k(b"watched")
    store.db.transact(lambda tr: tr.set(key, b"initial"))
    go = ctx.Event()
    proc = ctx.Process(target=workers.write_when_told, args=(store.url, key, go))
    proc.start()
    result: list[bool] = []
    watcher = threading.Thread(target=lambda: result.append(store.db.watch(key, 60, last_seen=b"initial")))
    watcher.start()
    go.set()
    watcher.join(JOIN_SECONDS)
    proc.join(JOIN_SECONDS)
    assert proc.exitcode == 0
    assert result == [True]
    assert store.db.transact(lambda tr: tr.get(key)) == b"changed"


def test_watch_times_out_when_nothing_changes(store: Store) -> None:
    key = store.k(b"quiet")
    store.db.transact(lambda tr: tr.set(key, b"same"))
    assert store.db.watch(key, 0.3) is False
    assert store.db.watch(key, 0.3, last_seen=b"other") is True
