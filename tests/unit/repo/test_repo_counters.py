from __future__ import annotations

from coditect.repo import counters
from coditect.store import Database, Transaction

KEY = b"counter"


def test_missing_counter_reads_zero(db: Database) -> None:
    assert db.transact(counters.read, KEY) == 0


def test_add_and_negative(db: Database) -> None:
    db.transact(counters.add, KEY, 5)
    db.transact(counters.add, KEY, -8)
    assert db.transact(counters.read, KEY) == -3
    assert db.transact(lambda tr: counters.read(tr, KEY, snapshot=True)) == -3
    raw = db.transact(lambda tr: tr.get(KEY))
    assert raw == (-3 % 2**64).to_bytes(8, "little")


def test_read_your_adds(db: Database) -> None:
    def body(tr: Transaction) -> int:
        counters.add(tr, KEY, 2)
        counters.add(tr, KEY, 3)
        return counters.read(tr, KEY)

    db.transact(counters.add, KEY, 10)
    assert db.transact(body) == 15
