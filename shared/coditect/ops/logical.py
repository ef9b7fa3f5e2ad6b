"""The logical export format (`.cdxl`): key/value pairs of the store, zstd-compressed.

Used for FoundationDB backups (one file per tenant plus one for global keys) and for per-tenant
export/import. Stream layout (inside one zstd frame with its content checksum):

    b"CDXL1\\n" + header JSON + b"\\n"
    per pair:  b"P" + >II(len key, len value) + key + value        (key order within the file)
    trailer:   b"E" + >Q(pair count) + SHA-256 of every pair record above

A file without its trailer (a killed writer) or whose pairs do not match it is refused by the
reader with `CorruptExport` naming the reason, so a truncated export is never taken as complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

MAGIC = b"CDXL1\n"
_PAIR = struct.Struct(">II")
_END = struct.Struct(">Q")
LEVEL = 3  # zstd's default: ~300 MB/s a core, ratio close to gzip -6


class CorruptExport(ValueError):
    """A logical export file is truncated, damaged or not one."""


class ExportWriter:
    """Write pairs in key order to `path` (created; fsync'd on close)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._file = path.open("wb")
        self._stream = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True).stream_writer(self._file)
        self._sha = hashlib.sha256()
        self.count = 0
        self.raw_bytes = 0
        self._stream.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")

    def add(self, key: bytes, value: bytes) -> None:
        record = b"P" + _PAIR.pack(len(key), len(value)) + key + value
        self._sha.update(record)
        self._stream.write(record)
        self.count += 1
        self.raw_bytes += len(key) + len(value)

    def close(self) -> None:
        self._stream.write(b"E" + _END.pack(self.count) + self._sha.digest())
        self._stream.flush(zstandard.FLUSH_FRAME)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def _exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise CorruptExport(f"truncated export: {what} cut short")
    return data


def read_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        return _header(stream, path)


def _header(stream: BinaryIO, path: Path) -> dict[str, Any]:
    if stream.read(len(MAGIC)) != MAGIC:
        raise CorruptExport(f"{path.name} is not a Coditect logical export (bad magic)")
    line = b""
    while not line.endswith(b"\n"):
        piece = stream.read(1)
        if not piece:
            raise CorruptExport(f"{path.name}: truncated header")
        line += piece
    header: dict[str, Any] = json.loads(line)
    return header


def read_pairs(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """Every pair of the export, checked against its trailer (CorruptExport otherwise)."""
    try:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
            _header(stream, path)
            sha = hashlib.sha256()
            count = 0
            while True:
                tag = stream.read(1)
                if tag == b"P":
                    head = _exact(stream, _PAIR.size, "pair header")
                    klen, vlen = _PAIR.unpack(head)
                    body = _exact(stream, klen + vlen, "pair")
                    sha.update(b"P" + head + body)
                    count += 1
                    yield body[:klen], body[klen:]
                elif tag == b"E":
                    (expected,) = _END.unpack(_exact(stream, _END.size, "trailer"))
                    digest = _exact(stream, 32, "trailer digest")
                    if expected != count or digest != sha.digest():
                        raise CorruptExport(
                            f"{path.name}: {count} pairs read, trailer says {expected}, or their digest differs"
                        )
                    return
                elif not tag:
                    raise CorruptExport(f"{path.name}: truncated export (no trailer after {count} pairs)")
                else:
                    raise CorruptExport(f"{path.name}: unexpected record tag {tag!r} after {count} pairs")
    except zstandard.ZstdError as exc:
        raise CorruptExport(f"{path.name}: compressed stream is damaged ({exc})") from exc
