"""coditect.ratelimit under contention: the limit holds exactly when many threads and processes
hit one subject at once, and concurrent allowed attempts claim slots instead of rewriting one key."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from coditect import keyspace, ratelimit
from coditect.ratelimit import Policy
from coditect.store import Database, StoreError, Transaction, open_store
from tests.helpers import run_threads

BURST = Policy("test-burst", limit=25, window=3600, backoff=60, backoff_cap=60)


def _hits(url: str, n: int, allowed: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = open_store(url)
    allowed.put(sum(db.transact(ratelimit.hit, BURST, "10.0.0.1", 100.0).allowed for _ in range(n)))


def test_threads_of_one_process_never_exceed_the_limit(db: Database) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [db.transact(ratelimit.hit, BURST, "10.0.0.1", 100.0).allowed for _ in range(10)]
        with lock:
            results.extend(mine)

    run_threads([work] * 8, 60)
    assert len(results) == 80
    assert sum(results) == BURST.limit  # exactly: never more, and no allowed attempt lost
    assert not db.transact(ratelimit.hit, BURST, "10.0.0.1", 101.0).allowed  # and it is blocked


def test_processes_never_exceed_the_limit(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    open_store(url).close()
    ctx = multiprocessing.get_context("spawn")
    allowed: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_hits, args=(url, 15, allowed)) for _ in range(3)]
    for p in procs:
        p.start()
    counts = [allowed.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sum(counts) == BURST.limit


def test_two_allowed_attempts_in_flight_do_not_conflict(db: Database) -> None:
    """The old single-record counter made every concurrent pair conflict; slots collide only when
    both attempts pick the same free one (then the second fails instead of counting twice)."""
    for _ in range(BURST.limit - 2):
        assert db.transact(ratelimit.hit, BURST, "s", 100.0).allowed
    a, b = db.create_transaction(), db.create_transaction()
    assert ratelimit.hit(a, BURST, "s", 100.0).allowed
    assert ratelimit.hit(b, BURST, "s", 100.0).allowed
    slot_a = next(k for k in a._writes if k != ratelimit.subject_key(BURST, "s"))
    slot_b = next(k for k in b._writes if k != ratelimit.subject_key(BURST, "s"))
    a.commit()
    if slot_a == slot_b:  # the same free slot picked by both: the second must fail, not double-count
        try:
            b.commit()
            raise AssertionError("a slot was claimed twice")
        except StoreError as exc:
            assert exc.code == 1020
    else:
        b.commit()  # different slots: both commit, no retry
    slots = keyspace.THROTTLE.range(BURST.name, ratelimit._digest(BURST, "s"))
    claimed = db.transact(lambda tr: tr.get_range(*slots))
    assert len(claimed) == BURST.limit - (1 if slot_a == slot_b else 0)


def test_a_denial_conflicts_with_a_concurrent_forgive(db: Database) -> None:
    for _ in range(BURST.limit):
        assert db.transact(ratelimit.hit, BURST, "s", 100.0).allowed
    denier: Transaction = db.create_transaction()
    assert not ratelimit.hit(denier, BURST, "s", 100.0).allowed  # saw every slot taken
    db.transact(ratelimit.forgive, BURST, "s")  # meanwhile one attempt is taken back
    try:
        denier.commit()
        raise AssertionError("a denial based on a stale count committed")
    except StoreError as exc:
        assert exc.code == 1020
    assert db.transact(ratelimit.hit, BURST, "s", 100.0).allowed  # the retry sees the free slot
