"""Values of any size (up to a transaction's budget) stored as one logical value.

FoundationDB caps a value at 100,000 bytes and performs best under ~10 kB, so values larger
than `INLINE_MAX` are split: the key holds a small header and the data lives in chunk keys
`key + pack((i,))` directly after it. Every stored byte string starts with a marker byte so
any value read in a range scan says what it is:

    0x00 + data                      inline value (≤ INLINE_MAX bytes of data)
    0x01 + >QI(total length, count)  header of a chunked value
    0x02 + data                      one chunk (≤ CHUNK_SIZE bytes of data)

Chunks are written blindly after clearing the whole chunk range, so replacing a large value
with a small one leaves nothing stale. Nothing else may be stored under a blob's key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import fdb.tuple as fdbtuple

from coditect.store.base import KeyValue, Transaction

INLINE_MAX = 10_000
CHUNK_SIZE = 10_000
_INLINE, _HEADER, _CHUNK = 0, 1, 2
_HEADER_FMT = ">QI"


class CorruptValue(ValueError):
    """A stored value is not in the blob format, or its chunks do not add up."""


def chunk_range(key: bytes) -> tuple[bytes, bytes]:
    """`[begin, end)` holding the chunk keys of `key` (and nothing else, by the rule above)."""
    return key + b"\x00", key + b"\xff"


def write_value(tr: Transaction, key: bytes, data: bytes) -> None:
    """Store `data` at `key`, inline or chunked, replacing whatever was there."""
    tr.clear_range(*chunk_range(key))
    if len(data) <= INLINE_MAX:
        tr.set(key, b"\x00" + data)
        return
    count = (len(data) + CHUNK_SIZE - 1) // CHUNK_SIZE
    tr.set(key, bytes([_HEADER]) + struct.pack(_HEADER_FMT, len(data), count))
    for i in range(count):
        tr.set(key + fdbtuple.pack((i,)), b"\x02" + data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE])


def clear_value(tr: Transaction, key: bytes) -> None:
    """Remove the value at `key` and any chunks (blind: no read)."""
    tr.clear(key)
    tr.clear_range(*chunk_range(key))


def _join(key: bytes, header: bytes, chunks: list[KeyValue]) -> bytes:
    total, count = struct.unpack(_HEADER_FMT, header[1:])
    data = b"".join(value[1:] for _, value in chunks)
    if len(chunks) != count or len(data) != total or any(value[:1] != b"\x02" for _, value in chunks):
        raise CorruptValue(f"chunks of {key!r} do not match their header")
    return data


def decode_stored(tr: Transaction, key: bytes, stored: bytes, *, snapshot: bool = False) -> bytes:
    """The logical value of `stored` (read at `key`); fetches chunks when it is a header."""
    marker = stored[:1]
    if marker == b"\x00":
        return stored[1:]
    if marker == b"\x01":
        chunks = tr.get_range(*chunk_range(key), snapshot=snapshot)
        return _join(key, stored, chunks)
    raise CorruptValue(f"value at {key!r} is not a blob (marker {marker!r})")


def read_value(tr: Transaction, key: bytes, *, snapshot: bool = False) -> bytes | None:
    """The value written by `write_value`, or None."""
    stored = tr.get(key, snapshot=snapshot)
    return None if stored is None else decode_stored(tr, key, stored, snapshot=snapshot)


def scan_values(
    tr: Transaction,
    begin: bytes,
    end: bytes,
    *,
    limit: int = 0,
    reverse: bool = False,
    snapshot: bool = False,
) -> Iterator[tuple[bytes, bytes]]:
    """`(key, value)` of every blob in `[begin, end)`, skipping chunk keys; `limit` counts blobs.

    Reads in batches so a limit of a few records does not read the whole range.
    """
    produced = 0
    batch = max(limit + 1, 16) if limit else 256
    while begin < end:
        kvs = tr.get_range(begin, end, limit=batch, reverse=reverse, snapshot=snapshot)
        for key, value in kvs:
            if value[:1] == b"\x02":
                continue  # a chunk: read through its header
            yield key, decode_stored(tr, key, value, snapshot=snapshot)
            produced += 1
            if limit and produced >= limit:
                return
        if len(kvs) < batch:
            return
        if reverse:
            end = kvs[-1][0]
        else:
            begin = kvs[-1][0] + b"\x00"
        batch = min(batch * 2, 4096)
