"""`Database.read(key)`: one read in its own transaction, the same answer as `transact(tr.get)`."""

from __future__ import annotations

import pytest

from coditect.store import StoreError, Transaction
from tests.conformance.conftest import Store


def test_read_sees_the_last_commit_and_absence(store: Store) -> None:
    key = store.k(b"one")
    assert store.db.read(key) is None
    store.db.transact(lambda tr: tr.set(key, b"v1"))
    assert store.db.read(key) == b"v1"
    store.db.transact(lambda tr: tr.set(key, b""))
    assert store.db.read(key) == b""  # an empty value is a value, not absence
    store.db.transact(lambda tr: tr.clear(key))
    assert store.db.read(key) is None
    for raw in (b"\x00", b"\xff\x00", b"a" * 100):
        store.db.transact(lambda tr, k=store.k(raw): tr.set(k, k))
        assert store.db.read(store.k(raw)) == store.k(raw)
        assert store.db.read(store.k(raw)) == store.db.transact(lambda tr, k=store.k(raw): tr.get(k))


def test_read_never_sees_uncommitted_writes(store: Store) -> None:
    key = store.k(b"pending")
    store.db.transact(lambda tr: tr.set(key, b"old"))
    tr = store.db.create_transaction()
    try:
        tr.set(key, b"new")
        tr.clear(store.k(b"other"))
        assert store.db.read(key) == b"old"
        tr.commit()
    finally:
        tr._release()
    assert store.db.read(key) == b"new"


def test_read_checks_its_key_like_get(store: Store) -> None:
    with pytest.raises(TypeError):
        store.db.read("text")  # type: ignore[arg-type]
    with pytest.raises(StoreError) as raised:
        store.db.read(b"k" * 10_001)
    assert raised.value.code == store.db.transact(_too_large_code)


def _too_large_code(tr: Transaction) -> int:
    try:
        tr.get(b"k" * 10_001)
    except StoreError as exc:
        return exc.code
    raise AssertionError("get accepted an oversized key")


def test_read_does_not_disturb_an_open_transaction_of_the_same_thread(store: Store) -> None:
    a, b = store.k(b"a"), store.k(b"b")
    store.db.transact(lambda tr: (tr.set(a, b"1"), tr.set(b, b"1")))

    def body(tr: Transaction) -> tuple[bytes | None, bytes | None, bytes | None]:
        first = tr.get(a)
        outside = store.db.read(b)  # same thread, between two reads of one transaction
        return first, outside, tr.get(b)

    assert store.db.transact(body) == (b"1", b"1", b"1")
