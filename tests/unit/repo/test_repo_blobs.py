from __future__ import annotations

import pytest

from coditect.keyspace import Subspace
from coditect.repo import blobs
from coditect.store import Database, Transaction

S = Subspace(("test", "blobs"))
SIZES = [0, 1, 9_999, 10_000, 10_001, 250_000]


def _data(n: int) -> bytes:
    return bytes((i * 7 + n) % 256 for i in range(n))


def _raw_keys(db: Database) -> list[bytes]:
    b, e = S.range()
    return [key for key, _ in db.transact(lambda tr: tr.get_range(b, e))]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(db: Database, size: int) -> None:
    key = S.key("v")
    db.transact(blobs.write_value, key, _data(size))
    assert db.transact(blobs.read_value, key) == _data(size)
    assert db.transact(lambda tr: blobs.read_value(tr, key, snapshot=True)) == _data(size)
    chunked = size > blobs.INLINE_MAX
    assert len(_raw_keys(db)) == (1 + -(-size // blobs.CHUNK_SIZE) if chunked else 1)


@pytest.mark.parametrize("size", SIZES)
def test_read_your_writes_in_one_transaction(db: Database, size: int) -> None:
    def body(tr: Transaction) -> bytes | None:
        blobs.write_value(tr, S.key("v"), _data(size))
        return blobs.read_value(tr, S.key("v"))

    assert db.transact(body) == _data(size)


def test_rewrite_large_with_small_leaves_no_chunks(db: Database) -> None:
    key = S.key("v")
    db.transact(blobs.write_value, key, _data(250_000))
    assert len(_raw_keys(db)) == 26
    db.transact(blobs.write_value, key, b"small")
    assert _raw_keys(db) == [key]
    assert db.transact(blobs.read_value, key) == b"small"
    db.transact(blobs.write_value, key, _data(30_000))
    db.transact(blobs.write_value, key, _data(20_001))  # fewer chunks than before
    assert len(_raw_keys(db)) == 4
    assert db.transact(blobs.read_value, key) == _data(20_001)


def test_clear_value(db: Database) -> None:
    key = S.key("v")
    db.transact(blobs.write_value, key, _data(50_000))
    db.transact(blobs.clear_value, key)
    assert _raw_keys(db) == []
    assert db.transact(blobs.read_value, key) is None


def test_scan_values_skips_chunks_and_counts_blobs(db: Database) -> None:
    sizes = {"a": 5, "b": 25_000, "c": 0, "d": 12_000}

    def fill(tr: Transaction) -> None:
        for name, n in sizes.items():
            blobs.write_value(tr, S.key(name), _data(n))

    db.transact(fill)
    b, e = S.range()
    got = db.transact(lambda tr: list(blobs.scan_values(tr, b, e)))
    assert [(S.unpack(k)[0], v) for k, v in got] == [(n, _data(s)) for n, s in sizes.items()]
    rev = db.transact(lambda tr: list(blobs.scan_values(tr, b, e, reverse=True, limit=3)))
    assert [S.unpack(k)[0] for k, _ in rev] == ["d", "c", "b"]
    assert rev[2][1] == _data(25_000)


def test_non_blob_value_is_corrupt(db: Database) -> None:
    db.transact(lambda tr: tr.set(S.key("raw"), b"\x07nope"))
    with pytest.raises(blobs.CorruptValue):
        db.transact(blobs.read_value, S.key("raw"))


def test_missing_chunk_is_corrupt(db: Database) -> None:
    key = S.key("v")
    db.transact(blobs.write_value, key, _data(30_000))
    db.transact(lambda tr: tr.clear(key + b"\x15\x01"))  # chunk (1,)
    with pytest.raises(blobs.CorruptValue):
        db.transact(blobs.read_value, key)
