"""Content store: chunks and manifests, content-addressed by SHA-256 per tenant, reference-counted.

Two levels, both counted with FoundationDB's atomic ADD in the transactions that add or remove
a reference (never by a later scan):

    chunk     T/fchunks/(h,)        → ≤ CHUNK_SIZE bytes          refs: T/fchunkrefs/(h,)
    manifest  T/fmanifests/(sha,)   → the chunk list of one file  refs: T/fmanifestrefs/(sha,)

A chunk's refs = occurrences of it in manifests + in staged uploads; a manifest's refs = file
version records (in any session of the tenant) whose content it is. Forking a file or restoring
an old version therefore adds one manifest reference, not one per chunk.

Existence rule: a refs key exists exactly when its chunk/manifest exists (created together,
deleted together by GC). Adding a reference reads the refs key without a conflict (snapshot)
and then either bumps it (blind ADD) with a read conflict on the *object* key, or — absent —
takes a read conflict on the refs key and creates the object. GC deletes an object only after
reading refs == 0 in its own transaction, and clears both keys. So GC and an adder always
conflict (the adder's object-key conflict meets GC's clear; GC's refs read meets the adder's
ADD): whichever commits second retries, so a chunk can never be deleted while something
references it, and never resurrected half-written. Two creators conflict on the refs key (the
second retries and bumps). Two adders of an existing object do not conflict at all: each
one's ADD is blind and nobody but GC writes the object key (concurrent uploads of the same
content — a common file, a retried PUT — no longer retry each other).

Removing a reference is a blind ADD of -1 plus a GC candidate marker (`keyspace.FILES_GC`, with the
time), so removals never conflict with each other; GC later checks the candidates.

Chunk size: 64 KiB (65,536 B) — the largest power of two under FoundationDB's 100,000-byte value
limit. Bigger chunks mean fewer keys and less per-key overhead (hashing is per byte, key/ref
bookkeeping per chunk), so throughput is close to the store's raw write rate; a 100 MiB file is
1,600 chunks and a 51 KB manifest. Dedup granularity is fixed-size (no content-defined chunking):
identical files and identical aligned 64 KiB runs are stored once.
"""

from __future__ import annotations

import functools
import struct
import time
from dataclasses import dataclass

from coditect import keyspace
from coditect.repo import blobs
from coditect.store import Transaction

CHUNK_SIZE = 64 * 1024
HASH_SIZE = 32
_MANIFEST_HEADER = struct.Struct(">BQI")  # format 1, file size, chunk size
_MANIFEST_FORMAT = 1


def _space(tid: str, name: str) -> keyspace.Subspace:
    return keyspace.tenant(tid).sub(name)


@functools.lru_cache(maxsize=1024)  # two keys per chunk, hundreds of chunks per request
def _chunk_prefixes(tid: str) -> tuple[bytes, bytes]:
    return _space(tid, keyspace.FILE_CHUNKS).raw_prefix, _space(tid, keyspace.FILE_CHUNK_REFS).raw_prefix


def _packed(h: bytes) -> bytes:
    # fdb.tuple's encoding of the 1-tuple (h,): type code 0x01, NULs escaped as 00 FF, 00 ends it
    # (what Subspace.key(h) returns, without the generic packer's per-call cost).
    return b"\x01" + h.replace(b"\x00", b"\x00\xff") + b"\x00"


def chunk_key(tid: str, h: bytes) -> bytes:
    return _chunk_prefixes(tid)[0] + _packed(h)


def chunk_refs_key(tid: str, h: bytes) -> bytes:
    return _chunk_prefixes(tid)[1] + _packed(h)


def manifest_key(tid: str, sha: bytes) -> bytes:
    return _space(tid, keyspace.FILE_MANIFESTS).key(sha)


def manifest_refs_key(tid: str, sha: bytes) -> bytes:
    return _space(tid, keyspace.FILE_MANIFEST_REFS).key(sha)


def candidate_key(kind: str, tid: str, h: bytes) -> bytes:
    """GC work list entry: `kind` is "chunk" or "manifest"."""
    return keyspace.FILES_GC.key(kind, tid, h)


def _count(value: bytes | None) -> int:
    return int.from_bytes(value[:8].ljust(8, b"\x00"), "little", signed=True) if value is not None else 0


def _one() -> bytes:
    return (1).to_bytes(8, "little")


def _stamp(now: float) -> bytes:
    return struct.pack(">d", now)


@dataclass(frozen=True)
class Manifest:
    """The content of one file: its size, chunk size and chunk hashes in order."""

    size: int
    chunk_size: int
    hashes: tuple[bytes, ...]

    def encode(self) -> bytes:
        return _MANIFEST_HEADER.pack(_MANIFEST_FORMAT, self.size, self.chunk_size) + b"".join(self.hashes)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        fmt, size, chunk_size = _MANIFEST_HEADER.unpack_from(data)
        body = data[_MANIFEST_HEADER.size :]
        if fmt != _MANIFEST_FORMAT or len(body) % HASH_SIZE:
            raise ValueError("corrupt file manifest")
        return cls(size, chunk_size, tuple(body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)))


# -- chunks ------------------------------------------------------------------------------------
def add_chunk_ref(tr: Transaction, tid: str, h: bytes, data: bytes | None) -> int:
    """Reference chunk `h`, storing `data` when the tenant does not have it yet.

    Returns the physical bytes added (0 when the chunk was already stored). `data` may be None
    only when the caller knows the chunk exists (it holds a reference already).
    """
    refs = chunk_refs_key(tid, h)
    if tr.snapshot.get(refs) is not None:
        tr.add_read_conflict_key(chunk_key(tid, h))  # GC's delete of it fails this commit
        tr.add(refs, 1)
        return 0
    tr.add_read_conflict_key(refs)  # a concurrent creator fails this commit
    if data is None:
        raise LookupError("chunk is not stored and no data was given")
    tr.set(chunk_key(tid, h), data)
    tr.set(refs, _one())
    tr.add(usage_key(tid, PHYSICAL), len(data))
    return len(data)


def release_chunk_ref(tr: Transaction, tid: str, h: bytes, now: float | None = None) -> None:
    """Drop one reference (blind) and leave a GC candidate marker."""
    tr.add(chunk_refs_key(tid, h), -1)
    tr.set(candidate_key("chunk", tid, h), _stamp(now if now is not None else time.time()))


def read_chunk(tr: Transaction, tid: str, h: bytes) -> bytes | None:
    return tr.get(chunk_key(tid, h))


# -- manifests ---------------------------------------------------------------------------------
def add_manifest_ref(tr: Transaction, tid: str, manifest_sha: bytes, manifest: Manifest | None) -> bool:
    """Reference the manifest of content `manifest_sha`; create it when absent.

    Returns True when it was created: the caller must then make sure the manifest's chunk
    references exist (an upload transfers its staged references; `add_chunk_ref` otherwise).
    """
    refs = manifest_refs_key(tid, manifest_sha)
    if tr.snapshot.get(refs) is not None:
        tr.add_read_conflict_key(manifest_key(tid, manifest_sha))  # GC's delete fails this commit
        tr.add(refs, 1)
        return False
    tr.add_read_conflict_key(refs)  # a concurrent creator fails this commit
    if manifest is None:
        raise LookupError("manifest is not stored and none was given")
    blobs.write_value(tr, manifest_key(tid, manifest_sha), manifest.encode())
    tr.set(refs, _one())
    return True


def release_manifest_ref(tr: Transaction, tid: str, manifest_sha: bytes, now: float | None = None) -> None:
    tr.add(manifest_refs_key(tid, manifest_sha), -1)
    tr.set(candidate_key("manifest", tid, manifest_sha), _stamp(now if now is not None else time.time()))


def read_manifest(tr: Transaction, tid: str, manifest_sha: bytes) -> Manifest | None:
    data = blobs.read_value(tr, manifest_key(tid, manifest_sha))
    return None if data is None else Manifest.decode(data)


def manifest_refs(tr: Transaction, tid: str, manifest_sha: bytes) -> int | None:
    """The manifest's reference count, or None when it does not exist."""
    value = tr.get(manifest_refs_key(tid, manifest_sha))
    return None if value is None else _count(value)


def chunk_refs(tr: Transaction, tid: str, h: bytes) -> int | None:
    value = tr.get(chunk_refs_key(tid, h))
    return None if value is None else _count(value)


# -- usage counters (per tenant) ----------------------------------------------------------------
LOGICAL = "files.logical_bytes"  # sizes of every stored file version, in every session
PHYSICAL = "files.physical_bytes"  # bytes of stored chunks (after dedup)


@functools.lru_cache(maxsize=1024)  # bumped once per new chunk
def usage_key(tid: str, name: str) -> bytes:
    return keyspace.tenant(tid).sub(keyspace.COUNTERS).key(name)


def read_stamp(value: bytes) -> float:
    return float(struct.unpack(">d", value[:8])[0])
