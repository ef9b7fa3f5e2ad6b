"""Versionstamped keys in FoundationDB's byte format, without libfdb_c.

`fdb.tuple.pack_with_versionstamp` needs the C library loaded (it checks `fdb.impl.Value`), so
keys are built here: the tuple encoding of an incomplete Versionstamp (type code 0x33, ten 0xff
bytes, a 2-byte user version) followed by the 4-byte little-endian offset of the placeholder,
exactly the parameter FoundationDB's SET_VERSIONSTAMPED_KEY (API ≥ 520) takes. Once committed,
`fdb.tuple.unpack` decodes the key into a complete `fdb.tuple.Versionstamp`.
"""

from __future__ import annotations

import struct
from typing import Any

import fdb.tuple as fdbtuple

VERSIONSTAMP_CODE = 0x33
PLACEHOLDER = b"\xff" * 10


def pack_versionstamped(
    prefix: tuple[Any, ...], user_version: int = 0, suffix: tuple[Any, ...] = ()
) -> bytes:
    """The SET_VERSIONSTAMPED_KEY parameter for the tuple `prefix + (Versionstamp,) + suffix`."""
    head: bytes = fdbtuple.pack(prefix)
    offset = len(head) + 1
    body = head + bytes([VERSIONSTAMP_CODE]) + PLACEHOLDER + struct.pack(">H", user_version)
    tail: bytes = fdbtuple.pack(suffix)
    return body + tail + struct.pack("<I", offset)


def fill(param: bytes, stamp: bytes) -> bytes:
    """Apply a versionstamp to a SET_VERSIONSTAMPED_* parameter (what the cluster does at commit)."""
    if len(stamp) != 10:
        raise ValueError("a versionstamp is 10 bytes")
    (offset,) = struct.unpack("<I", param[-4:])
    body = param[:-4]
    if offset + 10 > len(body):
        raise ValueError("versionstamp offset outside the parameter")
    return body[:offset] + stamp + body[offset + 10 :]


def make_stamp(version: int, batch: int = 0) -> bytes:
    """10 bytes: the 8-byte big-endian commit version and 2-byte batch order."""
    return struct.pack(">QH", version, batch)
