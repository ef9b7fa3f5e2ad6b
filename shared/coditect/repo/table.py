"""Tables: records under a subspace plus secondary indexes kept in the same transaction.

Layout (FoundationDB's simple-indexes pattern):

    record       subspace.key(*pk)                       → blob of codec.encode(record)
    unique index index.subspace.key(*values)             → pack(pk)
    plain index  index.subspace.key(*values, *pk)        → b""

All methods take `tr` first so they compose inside one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic

import fdb.tuple as fdbtuple

from coditect.errors import Conflict
from coditect.keyspace import Subspace
from coditect.repo import blobs
from coditect.repo.codec import M, RecordCodec
from coditect.repo.cursor import paginate
from coditect.store.base import Transaction

PK = tuple[Any, ...]


class UniqueViolation(Conflict):
    """Another record already holds this value of a unique index (409 unless a feature maps it)."""

    def __init__(self, index_name: str) -> None:
        super().__init__(f"Another record already has this {index_name}.", code="conflict")
        self.index_name = index_name


class Index(Generic[M]):
    """`key_fn(record)` gives the indexed values as a tuple, or None when not indexed."""

    def __init__(
        self, name: str, subspace: Subspace, key_fn: Callable[[M], PK | None], unique: bool = False
    ) -> None:
        self.name = name
        self.subspace = subspace
        self.key_fn = key_fn
        self.unique = unique

    def entry(self, pk: PK, record: M) -> bytes | None:
        values = self.key_fn(record)
        if values is None:
            return None
        return self.subspace.key(*values) if self.unique else self.subspace.key(*values, *pk)


class Table(Generic[M]):
    """Records of one model under `subspace`, keyed by a primary-key tuple."""

    def __init__(self, subspace: Subspace, codec: RecordCodec[M], indexes: Sequence[Index[M]] = ()) -> None:
        self.subspace = subspace
        self.codec = codec
        self.indexes = {ix.name: ix for ix in indexes}
        if len(self.indexes) != len(indexes):
            raise ValueError("index names must be unique within a table")

    def get(self, tr: Transaction, *pk: Any, snapshot: bool = False) -> M | None:
        data = blobs.read_value(tr, self.subspace.key(*pk), snapshot=snapshot)
        return None if data is None else self.codec.decode(data)

    def put(self, tr: Transaction, pk: PK, record: M, *, previous: M | None = None) -> None:
        """Write `record` and its index entries, replacing those of the stored version.

        `previous` is the stored version when the caller already read it; otherwise it is read
        here (when the table has indexes), so stale index entries are never left behind.
        Raises `UniqueViolation` when a unique value belongs to another record.
        """
        if previous is None and self.indexes:
            previous = self.get(tr, *pk)
        packed_pk: bytes = fdbtuple.pack(pk)
        for ix in self.indexes.values():
            new = ix.entry(pk, record)
            old = None if previous is None else ix.entry(pk, previous)
            if new == old:
                continue
            if new is not None and ix.unique:
                owner = tr.get(new)
                if owner is not None and owner != packed_pk:
                    raise UniqueViolation(ix.name)
            if old is not None:
                tr.clear(old)
            if new is not None:
                tr.set(new, packed_pk if ix.unique else b"")
        blobs.write_value(tr, self.subspace.key(*pk), self.codec.encode(record))

    def delete(self, tr: Transaction, pk: PK, record: M) -> None:
        """Remove the record stored at `pk` (given as `record`) and its index entries."""
        for ix in self.indexes.values():
            entry = ix.entry(pk, record)
            if entry is not None:
                tr.clear(entry)
        blobs.clear_value(tr, self.subspace.key(*pk))

    def scan(
        self, tr: Transaction, *prefix: Any, limit: int = 0, reverse: bool = False, snapshot: bool = False
    ) -> list[tuple[PK, M]]:
        """`(pk, record)` of the records whose pk starts with `prefix`, in key order."""
        begin, end = self._range(prefix)
        return self._decode(
            blobs.scan_values(tr, begin, end, limit=limit, reverse=reverse, snapshot=snapshot)
        )

    def page(
        self,
        tr: Transaction,
        *prefix: Any,
        limit: int,
        cursor: str | None,
        query: str,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> tuple[list[tuple[PK, M]], str | None]:
        """One page of `scan` and the next page's opaque cursor (None on the last page)."""
        begin, end = self._range(prefix)
        rows, next_cursor = paginate(
            tr, begin, end, limit=limit, cursor=cursor, query=query, reverse=reverse, snapshot=snapshot,
            blob_records=True,
        )  # fmt: skip
        return self._decode(rows), next_cursor

    def lookup(self, tr: Transaction, index_name: str, *values: Any, snapshot: bool = False) -> PK | None:
        """The pk holding `values` in a unique index, or None."""
        ix = self._index(index_name, unique=True)
        owner = tr.get(ix.subspace.key(*values), snapshot=snapshot)
        return None if owner is None else tuple(fdbtuple.unpack(owner))

    def find(
        self, tr: Transaction, index_name: str, *values: Any, limit: int = 0, snapshot: bool = False
    ) -> list[PK]:
        """The pks whose entry in a non-unique index starts with `values`, in index order."""
        ix = self._index(index_name, unique=False)
        begin, end = ix.subspace.range(*values)
        kvs = tr.get_range(begin, end, limit=limit, snapshot=snapshot)
        return [ix.subspace.unpack(key)[len(values) :] for key, _ in kvs]

    def _index(self, name: str, *, unique: bool) -> Index[M]:
        ix = self.indexes.get(name)
        if ix is None or ix.unique != unique:
            kind = "unique" if unique else "non-unique"
            raise KeyError(f"no {kind} index {name!r} on this table")
        return ix

    def _range(self, prefix: PK) -> tuple[bytes, bytes]:
        if prefix:
            return self.subspace.range(*prefix)
        packed = self.subspace.raw_prefix
        return packed + b"\x00", packed + b"\xff"

    def _decode(self, rows: Iterable[tuple[bytes, bytes]]) -> list[tuple[PK, M]]:
        return [(self.subspace.unpack(key), self.codec.decode(data)) for key, data in rows]
