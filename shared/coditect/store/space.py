"""Disk space for the embedded store: a reserve, and what a full disk may still do.

A full data volume used to turn every write into a 500, including the deletes and GC that could
free space. Now (issue 15 item 15):

- **StoreFull**: a commit the disk cannot hold (SQLite's SQLITE_FULL, or ENOSPC from the OS)
  raises `StoreFull`, which the HTTP runtime answers 507 `insufficient_storage` with Retry-After.
- **A reserve**: `<db dir>/store.reserve`, a file of `reserve_bytes` of real blocks (written,
  not sparse), made at open when there is room. When a *freeing* commit (below) hits a full disk
  the reserve is deleted, which hands its blocks back to the file system, and the commit is
  retried on them. A growing write that hits a full disk never touches the reserve.
- **Only freeing work while low**: while the volume's free space is under `reserve_bytes`
  (checked with statvfs at most every `CHECK_SECONDS`), transactions are refused with `StoreFull`
  before they touch SQLite, except inside `freeing()`: the HTTP runtime runs every DELETE request
  in it, and the gc job runs in it, so space can be freed through the API and by GC. A freeing
  transaction that still hits a full disk releases the reserve and is retried (nothing was
  committed). Free space counts what the store can reuse without the file system (pages a delete
  put on SQLite's freelist), so space freed through the API admits writes again. Once free space
  is back above twice the reserve, the reserve is made again.

Why this works with SQLite: a delete rewrites pages into the WAL; after a checkpoint SQLite reuses
the WAL file from its start without shrinking it (journal_size_limit is not set), and freed
database pages go to the freelist, so a freeing transaction needs few or no new blocks, and the
reserve covers WAL growth when it does. On FoundationDB a full cluster throttles writes instead
(ratekeeper); those surface as timeouts (1031 → 503), not as StoreFull.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("coditect.store")

CHECK_SECONDS = 1.0
_BLOCK = b"\0" * 65536


_local = threading.local()


@contextlib.contextmanager
def freeing() -> Iterator[None]:
    """Mark this thread's transactions as work that frees space (deletes, purges, GC)."""
    previous = getattr(_local, "freeing", False)
    _local.freeing = True
    try:
        yield
    finally:
        _local.freeing = previous


def is_freeing() -> bool:
    return bool(getattr(_local, "freeing", False))


class StoreFull(Exception):
    """The store's disk is full: the write was not made (nothing was committed)."""


def is_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" and for ENOSPC/EDQUOT from the OS."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error):
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        return "disk is full" in str(exc) or "No space left" in str(exc)
    return False


class SpaceGuard:
    """The reserve file and the low-space admission rule of one store directory."""

    def __init__(self, directory: Path, reserve_bytes: int, reusable: Callable[[], int] = lambda: 0) -> None:
        self.directory = directory
        self.reusable = reusable  # bytes the store can reuse without the file system (SQLite's freelist)
        self.reserve_bytes = max(0, reserve_bytes)
        self.reserve = directory / "store.reserve"
        self._lock = threading.Lock()
        self._checked = 0.0
        self._low = False

    def free_bytes(self) -> int:
        stat = os.statvfs(self.directory)
        return stat.f_bavail * stat.f_frsize

    def low(self) -> bool:
        """True while free space is under the reserve (cached for `CHECK_SECONDS`)."""
        if self.reserve_bytes == 0:
            return False
        now = time.monotonic()
        if now - self._checked < CHECK_SECONDS:
            return self._low
        with self._lock:
            try:
                free = self.free_bytes() + self.reusable()
            except (OSError, sqlite3.Error):
                return self._low
            self._checked, self._low = now, free < self.reserve_bytes
            if not self._low and free >= 2 * self.reserve_bytes and not self.reserve.exists():
                self._make_reserve()
        return self._low

    def ensure(self) -> None:
        """Make the reserve when missing and there is room (at open; idempotent)."""
        if self.reserve_bytes and not self.reserve.exists():
            with contextlib.suppress(OSError), self._lock:
                if self.free_bytes() >= 2 * self.reserve_bytes:
                    self._make_reserve()

    def _make_reserve(self) -> None:
        tmp = self.reserve.with_name(f".{self.reserve.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as file:  # real blocks: a sparse file would reserve nothing
                left = self.reserve_bytes
                while left > 0:
                    left -= file.write(_BLOCK[: min(left, len(_BLOCK))])
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.reserve)
        except OSError:
            tmp.unlink(missing_ok=True)

    def release(self) -> bool:
        """Delete the reserve (its blocks become free for freeing transactions); True if it was there."""
        with self._lock:
            self._checked, self._low = time.monotonic(), True
            try:
                self.reserve.unlink()
            except FileNotFoundError:
                return False
        log.warning("store: the disk is full; the space reserve was released for deletes and GC")
        return True
