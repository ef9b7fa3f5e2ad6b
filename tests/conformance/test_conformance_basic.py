"""Single-process semantics every backend must share (FoundationDB's behaviour is the reference)."""

from __future__ import annotations

import gc
import struct
import time
from typing import Any

import pytest

from coditect.store import StoreError, Transaction, open_store
from tests.conformance.conftest import Store

RAW_KEYS = [
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x00\xff",
    b"\x01",
    b"a",
    b"a\x00",
    b"ab",
    b"\xfe",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
]


def _fill(store: Store, raws: list[bytes]) -> None:
    def body(tr: Transaction) -> None:
        for raw in raws:
            tr.set(store.k(raw), raw or b"empty")

    store.db.transact(body)


def test_ordering_is_bytewise_with_nul_and_ff(store: Store) -> None:
    _fill(store, list(reversed(RAW_KEYS)))
    got = store.db.transact(lambda tr: tr.get_range_startswith(store.prefix))
    assert [key for key, _ in got] == [store.k(r) for r in sorted(RAW_KEYS)]
    assert [key for key, _ in got] == sorted(store.k(r) for r in RAW_KEYS)


def test_range_is_half_open_with_limit_and_reverse(store: Store) -> None:
    _fill(store, RAW_KEYS)
    keys = [store.k(r) for r in sorted(RAW_KEYS)]
    db = store.db
    b, e = store.k(b"\x00"), store.k(b"\xff")
    assert [key for key, _ in db.transact(lambda tr: tr.get_range(b, e))] == keys[1:9]
    assert [key for key, _ in db.transact(lambda tr: tr.get_range(b, e, limit=3))] == keys[1:4]
    assert [key for key, _ in db.transact(lambda tr: tr.get_range(b, e, limit=3, reverse=True))] == keys[6:9][
        ::-1
    ]
    assert [key for key, _ in db.transact(lambda tr: tr.get_range(b, e, reverse=True))] == keys[1:9][::-1]
    assert db.transact(lambda tr: tr.get_range(e, b)) == []
    assert db.transact(lambda tr: tr.get_range(b, b)) == []


def test_range_rows_are_exact_tuples_of_bytes_on_every_path(store: Store) -> None:
    """Range reads return plain `(key, value)` tuples — not a tuple subclass — whether the rows come
    straight from the backend (one batch or several), merged with this transaction's writes, limited,
    reversed or through a snapshot: the cyclic GC untracks exact tuples of bytes, never a subclass
    (docs/hotpath.md, "Store overhead against raw sqlite3")."""
    k = store.k
    many = [k(b"m/%05d" % i) for i in range(1500)]  # more than the SQLite backend's first batch

    def load(tr: Transaction) -> None:
        for key in many:
            tr.set(key, b"v")
        tr.set(k(b"x/1"), b"one")

    store.db.transact(load)

    def reads(tr: Transaction) -> list[list[tuple[bytes, bytes]]]:
        plain = [
            tr.get_range(k(b"m/"), k(b"m0")),
            tr.get_range(k(b"m/"), k(b"m0"), limit=10, reverse=True),
            tr.snapshot.get_range_startswith(k(b"x/")),
        ]
        tr.set(k(b"x/0"), b"zero")  # now the range holds a write of this transaction: the merged path
        return [*plain, tr.get_range_startswith(k(b"x/")), tr.snapshot.get_range(k(b"x/"), k(b"x0"))]

    results = store.db.transact(reads)
    assert [len(rows) for rows in results] == [1500, 10, 1, 2, 2]
    assert [key for key, _ in results[0]] == many
    assert results[3] == [(k(b"x/0"), b"zero"), (k(b"x/1"), b"one")]
    rows = [row for result in results for row in result]
    assert all(type(row) is tuple and len(row) == 2 for row in rows)
    assert all(type(key) is bytes and type(value) is bytes for key, value in rows)
    gc.collect()  # a full collection untracks every exact tuple holding only untracked objects
    assert not any(gc.is_tracked(row) for row in rows)


def test_read_your_writes_sets_clears_ranges_and_adds(store: Store) -> None:
    _fill(store, [b"a", b"b", b"c", b"d"])
    k = store.k

    def body(tr: Transaction) -> dict[str, object]:
        seen: dict[str, object] = {}
        tr.set(k(b"a"), b"A2")
        tr.clear(k(b"b"))
        seen["a"], seen["b"] = tr.get(k(b"a")), tr.get(k(b"b"))
        tr.clear_range(k(b"c"), k(b"e"))
        seen["c"] = tr.get(k(b"c"))
        tr.set(k(b"d"), b"D2")  # a set after a range clear is visible
        tr.add(k(b"n"), 5)
        tr.add(k(b"n"), -2)
        seen["n"] = tr.get(k(b"n"))
        tr.add(k(b"c"), 7)  # add on a key cleared in this transaction starts from zero
        seen["c_added"] = tr.get(k(b"c"))
        seen["range"] = tr.get_range_startswith(store.prefix)
        seen["rev2"] = [key for key, _ in tr.get_range_startswith(store.prefix, limit=2, reverse=True)]
        return seen

    seen = store.db.transact(body)
    three, seven = (3).to_bytes(8, "little"), (7).to_bytes(8, "little")
    assert seen["a"] == b"A2" and seen["b"] is None and seen["c"] is None
    assert seen["n"] == three and seen["c_added"] == seven
    expected = [(k(b"a"), b"A2"), (k(b"c"), seven), (k(b"d"), b"D2"), (k(b"n"), three)]
    assert seen["range"] == expected
    assert seen["rev2"] == [k(b"n"), k(b"d")]
    assert store.db.transact(lambda tr: tr.get_range_startswith(store.prefix)) == expected


def test_add_on_existing_value_and_wraparound(store: Store) -> None:
    key = store.k(b"n")
    store.db.transact(lambda tr: tr.set(key, (41).to_bytes(8, "little")))
    store.db.transact(lambda tr: tr.add(key, 1))
    assert store.db.transact(lambda tr: tr.get(key)) == (42).to_bytes(8, "little")
    store.db.transact(lambda tr: tr.add(key, -43))
    assert store.db.transact(lambda tr: tr.get(key)) == (2**64 - 1).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("what", "code"),
    [("key", 2102), ("value", 2103), ("transaction", 2101)],
)
def test_limits_raise_their_codes(store: Store, what: str, code: int) -> None:
    def body(tr: Transaction) -> None:
        if what == "key":
            tr.set(store.k(b"k" * 10_001), b"v")
        elif what == "value":
            tr.set(store.k(b"v"), b"x" * 100_001)
        else:
            for i in range(101):  # 101 x ~100 kB > 10,000,000 bytes
                tr.set(store.k(b"big%03d" % i), b"x" * 99_990)

    with pytest.raises(StoreError) as info:
        store.db.transact(body)
    assert info.value.code == code
    assert store.db.transact(lambda tr: tr.get_range_startswith(store.prefix)) == []


def test_limits_allow_the_maximum(store: Store) -> None:
    big_key = store.k(b"k" * (10_000 - len(store.prefix)))
    store.db.transact(lambda tr: tr.set(big_key, b"x" * 100_000))
    assert store.db.transact(lambda tr: tr.get(big_key)) == b"x" * 100_000


def test_transaction_older_than_five_seconds_is_too_old(store: Store) -> None:
    tr = store.db.create_transaction()
    tr.get(store.k(b"a"))
    time.sleep(5.2)  # FoundationDB's 5 s transaction life: the one sleep this suite needs
    with pytest.raises(StoreError) as info:
        tr.get(store.k(b"a"))
        tr.set(store.k(b"a"), b"1")
        tr.commit()
    assert info.value.code == 1007
    assert info.value.retryable


@pytest.mark.parametrize("call", ["get", "set", "clear", "get_range", "add", "value"])
def test_non_bytes_key_or_value_is_type_error(store: Store, call: str) -> None:
    tr = store.db.create_transaction()
    with pytest.raises(TypeError):
        if call == "get":
            tr.get("key")  # type: ignore[arg-type]
        elif call == "set":
            tr.set("key", b"v")  # type: ignore[arg-type]
        elif call == "clear":
            tr.clear(1)  # type: ignore[arg-type]
        elif call == "get_range":
            tr.get_range(b"a", "b")  # type: ignore[arg-type]
        elif call == "add":
            tr.add(("t",), 1)  # type: ignore[arg-type]
        else:
            tr.set(store.k(b"a"), "text")  # type: ignore[arg-type]


def test_mutations_apply_in_the_order_they_were_issued(store: Store) -> None:
    stamped_param = store.k(b"vs/") + b"\xff" * 10 + struct.pack("<I", len(store.k(b"vs/")))
    value_key, kept = store.k(b"v"), store.k(b"w")

    def body(tr: Any) -> None:
        tr.set_versionstamped_key(stamped_param, b"x")
        tr.clear_range(store.k(b"vs/"), store.k(b"vs0"))  # issued after: removes the stamped key
        tr.set_versionstamped_value(value_key, b"\x00" * 10 + struct.pack("<I", 0))
        tr.clear(value_key)  # issued after: the key ends up absent
        tr.set(kept, b"1")
        tr.set_versionstamped_value(kept, b"\x00" * 10 + struct.pack("<I", 0))  # issued after: wins

    store.db.transact(body)
    rows = store.db.transact(lambda tr: tr.get_range_startswith(store.prefix))
    [(key, value)] = rows
    assert key == kept
    assert len(value) == 10 and value != b"\x00" * 10


def test_snapshot_reads_never_fail_and_see_one_point_in_time(store: Store) -> None:
    a, b = store.k(b"a"), store.k(b"b")
    store.db.transact(lambda tr: (tr.set(a, b"1"), tr.set(b, b"1")))
    tr = store.db.create_transaction()
    assert tr.snapshot.get(a) == b"1"
    store.db.transact(lambda t: (t.set(a, b"2"), t.set(b, b"2")))  # commits between two reads
    # Later snapshot reads still see the first read's point in time, and nothing fails.
    assert tr.snapshot.get(b) == b"1"
    assert [value for _, value in tr.snapshot.get_range(a, b + b"\x00")] == [b"1", b"1"]
    tr.set(store.k(b"out"), b"x")
    tr.commit()


def test_snapshot_read_adds_no_conflict_but_normal_read_does(store: Store) -> None:
    watched = store.k(b"watched")
    store.db.transact(lambda tr: tr.set(watched, b"0"))

    snap = store.db.create_transaction()
    assert snap.snapshot.get(watched) == b"0"
    assert [key for key, _ in snap.snapshot.get_range_startswith(store.prefix)] == [watched]
    plain = store.db.create_transaction()
    assert plain.get(watched) == b"0"

    store.db.transact(lambda tr: tr.set(watched, b"1"))  # a concurrent commit changes the key

    snap.set(store.k(b"out1"), b"x")
    snap.commit()  # snapshot reads took no read conflict
    plain.set(store.k(b"out2"), b"x")
    with pytest.raises(StoreError) as info:
        plain.commit()
    assert info.value.code == 1020
    assert store.db.transact(lambda tr: tr.get(store.k(b"out1"))) == b"x"
    assert store.db.transact(lambda tr: tr.get(store.k(b"out2"))) is None


def test_read_conflict_key_conflicts_without_a_read(store: Store) -> None:
    """FoundationDB's add_read_conflict_key: a commit that wrote the key after this transaction's
    read version fails it (1020), one that wrote another key does not; the key is never read."""
    guarded, other = store.k(b"guarded"), store.k(b"other")
    store.db.transact(lambda tr: tr.set(guarded, b"0"))

    hit = store.db.create_transaction()
    assert hit.snapshot.get(other) is None  # pins the read version
    hit.add_read_conflict_key(guarded)
    miss = store.db.create_transaction()
    assert miss.snapshot.get(other) is None
    miss.add_read_conflict_key(store.k(b"guarded2"))

    store.db.transact(lambda tr: tr.clear(guarded))  # a concurrent commit writes the key

    hit.set(store.k(b"out1"), b"x")
    with pytest.raises(StoreError) as info:
        hit.commit()
    assert info.value.code == 1020
    miss.set(store.k(b"out2"), b"x")
    miss.commit()
    assert store.db.transact(lambda tr: (tr.get(store.k(b"out1")), tr.get(store.k(b"out2")))) == (None, b"x")
    with pytest.raises(StoreError) as too_large:
        store.db.create_transaction().add_read_conflict_key(b"k" * 10_001)
    assert too_large.value.code == 2102


def test_conflict_is_retried_by_transact(store: Store) -> None:
    calls: list[int] = []
    store.db.faults.conflicts = 2

    def body(tr: Transaction) -> None:
        calls.append(1)
        tr.set(store.k(b"c"), b"v")

    store.db.transact(body)
    assert len(calls) == 3


def test_commit_unknown_result_and_idempotency(store: Store) -> None:
    """1021 means the commit may have happened; `transact` retries it. A body that checks its
    own marker applies once; a blind add applies twice. That is why bodies must be idempotent."""
    db, marker, counter, blind = store.db, store.k(b"marker"), store.k(b"counter"), store.k(b"blind")

    def idempotent(tr: Transaction) -> None:
        if tr.get(marker) is None:
            tr.set(marker, b"done")
            tr.add(counter, 1)

    db.faults.commit_unknown_after = 1
    db.transact(idempotent)
    assert db.faults.commit_unknown_after == 0  # the fault fired: the first commit was applied
    assert db.transact(lambda tr: tr.get(counter)) == (1).to_bytes(8, "little")

    db.faults.commit_unknown_after = 1
    db.transact(lambda tr: tr.add(blind, 1))
    assert db.transact(lambda tr: tr.get(blind)) == (2).to_bytes(8, "little")


def test_versionstamp_of_a_commit(store: Store) -> None:
    import fdb.tuple as fdbtuple

    from coditect.store.versionstamp import pack_versionstamped

    prefix = (*store.ns.prefix, "vs")
    tr = store.db.create_transaction()
    tr.set_versionstamped_key(pack_versionstamped(prefix, user_version=7), b"v")
    tr.commit()
    stamp = tr.get_versionstamp()
    [(key, _)] = store.db.transact(lambda t: t.get_range_startswith(fdbtuple.pack(prefix)))
    decoded = fdbtuple.unpack(key)[-1]
    assert isinstance(decoded, fdbtuple.Versionstamp)
    assert decoded.tr_version == stamp and decoded.user_version == 7


def test_unknown_url_scheme_names_accepted_ones() -> None:
    with pytest.raises(ValueError, match="accepted: sqlite, fdb"):
        open_store("postgres://db/coditect")


def test_reads_stay_consistent_when_commits_land_between_them(store: Store) -> None:
    a, b, other = store.k(b"a"), store.k(b"b"), store.k(b"other")
    _fill(store, [b"a", b"b"])

    tr = store.db.create_transaction()
    assert tr.get(a) == b"a"
    store.db.transact(lambda t: t.set(other, b"x"))  # unrelated commit between the two reads
    assert tr.get(b) == b"b"
    tr.set(store.k(b"out"), b"1")
    tr.commit()  # nothing this transaction read changed

    tr = store.db.create_transaction()
    assert tr.get(a) == b"a"
    store.db.transact(lambda t: t.set(a, b"a1"))  # the value already read changes
    with pytest.raises(StoreError) as info:
        tr.get(b)  # SQLite notices here; FoundationDB at commit
        tr.set(store.k(b"out"), b"2")
        tr.commit()
    assert info.value.code == 1020
    assert store.db.transact(lambda t: t.get(store.k(b"out"))) == b"1"
