"""Reference counting under concurrency: adders of existing content never conflict with each
other, and GC deleting an object always conflicts with a concurrent adder (either order)."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from coditect.files import chunks
from coditect.store import Database, StoreError

DATA = b"x" * 1000
H = hashlib.sha256(DATA).digest()


def _tid() -> str:
    return str(uuid.uuid4())


def test_two_adders_of_an_existing_chunk_both_commit(db: Database) -> None:
    tid = _tid()
    db.transact(chunks.add_chunk_ref, tid, H, DATA)
    first, second = db.create_transaction(), db.create_transaction()
    assert chunks.add_chunk_ref(first, tid, H, DATA) == 0
    assert chunks.add_chunk_ref(second, tid, H, DATA) == 0
    first.commit()
    second.commit()  # no read conflict between the two blind ADDs
    assert db.transact(chunks.chunk_refs, tid, H) == 3


def test_two_creators_conflict_and_the_retry_counts_both(db: Database) -> None:
    tid = _tid()
    first, second = db.create_transaction(), db.create_transaction()
    assert chunks.add_chunk_ref(first, tid, H, DATA) == len(DATA)
    assert chunks.add_chunk_ref(second, tid, H, DATA) == len(DATA)
    first.commit()
    with pytest.raises(StoreError) as info:
        second.commit()
    assert info.value.code == 1020
    db.transact(chunks.add_chunk_ref, tid, H, DATA)  # the retry sees the chunk and bumps it
    assert db.transact(chunks.chunk_refs, tid, H) == 2


def _gc_delete(tr: object, tid: str) -> None:
    # What files.gc does for a chunk with refs == 0: read refs (a conflict), clear both keys.
    assert chunks.chunk_refs(tr, tid, H) == 0  # type: ignore[arg-type]
    tr.clear(chunks.chunk_key(tid, H))  # type: ignore[attr-defined]
    tr.clear(chunks.chunk_refs_key(tid, H))  # type: ignore[attr-defined]


@pytest.mark.parametrize("gc_first", [True, False])
def test_gc_and_an_adder_of_an_unreferenced_chunk_conflict(db: Database, gc_first: bool) -> None:
    tid = _tid()
    db.transact(chunks.add_chunk_ref, tid, H, DATA)
    db.transact(chunks.release_chunk_ref, tid, H)
    adder, gc = db.create_transaction(), db.create_transaction()
    assert chunks.add_chunk_ref(adder, tid, H, None) == 0  # refs key exists (0): a blind bump
    _gc_delete(gc, tid)
    winner, loser = (gc, adder) if gc_first else (adder, gc)
    winner.commit()
    with pytest.raises(StoreError) as info:
        loser.commit()
    assert info.value.code == 1020
    if gc_first:  # the chunk is gone; the adder's retry must recreate it, never bump a ghost
        assert db.transact(chunks.chunk_refs, tid, H) is None
        db.transact(chunks.add_chunk_ref, tid, H, DATA)
        assert db.transact(chunks.read_chunk, tid, H) == DATA
    assert db.transact(chunks.chunk_refs, tid, H) == 1


def test_gc_and_an_adder_of_an_unreferenced_manifest_conflict(db: Database) -> None:
    tid = _tid()
    manifest = chunks.Manifest(len(DATA), chunks.CHUNK_SIZE, (H,))
    db.transact(chunks.add_manifest_ref, tid, H, manifest)
    db.transact(chunks.release_manifest_ref, tid, H)
    adder, gc = db.create_transaction(), db.create_transaction()
    assert chunks.add_manifest_ref(adder, tid, H, manifest) is False
    assert chunks.manifest_refs(gc, tid, H) == 0
    gc.clear(chunks.manifest_key(tid, H))
    gc.clear(chunks.manifest_refs_key(tid, H))
    gc.commit()
    with pytest.raises(StoreError) as info:
        adder.commit()
    assert info.value.code == 1020
