"""Time-ordered UUIDs (version 7, RFC 9562) so records keyed by id list in creation order."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """A random UUIDv7 string: 48-bit Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def derived(namespace: str, name: str) -> str:
    """A deterministic id (UUIDv5) for copies: the same source id always maps to the same copy id,
    so a retried copy transaction rewrites the same keys."""
    return str(uuid.uuid5(uuid.UUID(namespace), name))


def derived_ordered(namespace: str, source_id: str) -> str:
    """A deterministic copy of a UUIDv7 that sorts where the source sorts: the source's first
    10 bytes (timestamp, version, variant and 26 random bits) and 6 bytes of UUIDv5(namespace,
    source). Copies of one session's conversations list in the source's order."""
    head = uuid.UUID(source_id).bytes[:10]
    tail = uuid.uuid5(uuid.UUID(namespace), source_id).bytes[10:]
    return str(uuid.UUID(bytes=head + tail))
