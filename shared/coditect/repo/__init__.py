"""The repository toolkit every feature builds on (key subspaces live in `coditect.keyspace`).

- `RecordCodec`: pydantic models ↔ versioned compact JSON.
- `Table` / `Index`: records plus unique and non-unique secondary indexes, same transaction.
- `blobs`: transparent chunking of values above ~10 kB.
- `cursor.paginate`: opaque cursors bound to their query; range reads only.
- `counters`: conflict-free 8-byte LE counters over the atomic ADD.
"""

from __future__ import annotations

from coditect.repo import blobs, counters
from coditect.repo.blobs import CorruptValue, clear_value, read_value, write_value
from coditect.repo.codec import CodecError, RecordCodec, UnknownVersion
from coditect.repo.cursor import paginate
from coditect.repo.table import Index, Table, UniqueViolation

__all__ = [
    "CodecError",
    "CorruptValue",
    "Index",
    "RecordCodec",
    "Table",
    "UniqueViolation",
    "UnknownVersion",
    "blobs",
    "clear_value",
    "counters",
    "paginate",
    "read_value",
    "write_value",
]
