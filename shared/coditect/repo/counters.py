"""Counters: 8-byte little-endian signed integers changed only with the atomic ADD.

`add` takes no read conflict, so any number of concurrent writers never conflict with each
other; reading the value (without `snapshot`) does, as any read does.
"""

from __future__ import annotations

from coditect.store.base import Transaction


def add(tr: Transaction, key: bytes, n: int) -> None:
    """Add `n` (may be negative) to the counter at `key`; a missing counter counts as 0."""
    tr.add(key, n)


def read(tr: Transaction, key: bytes, *, snapshot: bool = False) -> int:
    """The counter's value; 0 when it was never written."""
    value = tr.get(key, snapshot=snapshot)
    if value is None:
        return 0
    # ADD works on the operand's width (8 bytes); shorter stored values are zero-extended.
    return int.from_bytes(value[:8].ljust(8, b"\x00"), "little", signed=True)
