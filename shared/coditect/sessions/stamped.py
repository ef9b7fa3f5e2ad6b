"""Blob-format values at versionstamped keys (repo.blobs writes only keys known before commit).

Same byte format as `coditect.repo.blobs` (marker 0x00 inline, 0x01 header `>QI` of total length
and chunk count, 0x02 chunk at `key + pack((i,))`), so `blobs.scan_values`/`read_value` read these
values back. Written here because the key is only known at commit: every chunk key carries the
same versionstamp placeholder, with the chunk index as a tuple suffix.
"""

from __future__ import annotations

import struct

import fdb.tuple as fdbtuple

from coditect.repo.blobs import CHUNK_SIZE, INLINE_MAX
from coditect.store import Transaction
from coditect.store.versionstamp import PLACEHOLDER, VERSIONSTAMP_CODE, pack_versionstamped

_HEADER_FMT = ">QI"  # must match coditect.repo.blobs
VALUE_PLACEHOLDER = PLACEHOLDER + struct.pack("<I", 0)  # SET_VERSIONSTAMPED_VALUE: stamp at offset 0


def write(tr: Transaction, prefix: tuple[object, ...], data: bytes) -> None:
    """Store `data` at `pack(prefix + (Versionstamp(<this commit>, 0),))`, inline or chunked."""
    if len(data) <= INLINE_MAX:
        tr.set_versionstamped_key(pack_versionstamped(prefix, 0), b"\x00" + data)
        return
    count = (len(data) + CHUNK_SIZE - 1) // CHUNK_SIZE
    header = b"\x01" + struct.pack(_HEADER_FMT, len(data), count)
    tr.set_versionstamped_key(pack_versionstamped(prefix, 0), header)
    for i in range(count):
        chunk = b"\x02" + data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]
        tr.set_versionstamped_key(pack_versionstamped(prefix, 0, (i,)), chunk)


def complete_key(prefix_packed: bytes, stamp: bytes, user_version: int = 0) -> bytes:
    """The packed key `prefix + (Versionstamp(stamp, user_version),)` for a committed stamp
    (fdb.tuple cannot pack a Versionstamp without libfdb_c)."""
    if len(stamp) != 10:
        raise ValueError("a versionstamp is 10 bytes")
    return prefix_packed + bytes([VERSIONSTAMP_CODE]) + stamp + struct.pack(">H", user_version)


def stamp_of(key_tail: bytes) -> bytes:
    """The 10-byte stamp of a key tail that starts with a packed Versionstamp."""
    versionstamp = fdbtuple.unpack(key_tail)[0]
    tr_version: bytes = versionstamp.tr_version
    return tr_version
