"""The production backend: a thin adapter over the official `foundationdb` bindings (7.3, API 730).

FoundationDB itself provides read-your-writes, conflict detection, limits and the 5 s
transaction life, so `FDBTransaction` overrides the *public* methods of `Transaction` and
forwards them, instead of the primitives the SQLite backend implements. The only things added
here are the argument checks (so a non-bytes key is a `TypeError` at the call, as everywhere),
the fault-injection hook, and the translation of `fdb.FDBError` into `StoreError` with the same
numeric code, done at this boundary only (`translating`, modelled on httpx's `map_exceptions`).

The retry loop is FoundationDB's: on a `StoreError` the loop calls `tr.on_error(code)`, which
backs off and resets the transaction for a retryable code and re-raises otherwise; the retry
limit and timeout are database options, so they survive `on_error` (API ≥ 610).

libfdb_c is loaded only when this backend is selected (`fdb.api_version` imports `fdb.impl`,
which loads the shared library); `fdb.tuple` needs no C library and is used everywhere. A missing
library (`FDBClientMissing`) and a library too old for API 730 (`FDBApiVersionMismatch`) are told
apart, each with what to install.

Production details: a range read with no limit streams with `want_all` (it reads everything, so
the biggest batches), one with a limit with `exact`; `watch` retries retryable errors like a
transaction; `set_batch_priority` lets bulk work (purge, GC, export) yield to user traffic; a
read-only cluster file (a ConfigMap mount) is copied to a writable file first, because the client
rewrites it when the coordinators change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from coditect.store import errors as E
from coditect.store.base import Database, KeyValue, Transaction, _check_key, _check_value
from coditect.store.errors import StoreError

API_VERSION = 730
CLIENT_PACKAGE = "foundationdb-clients 7.3.69"
MISSING_CLIENT = (
    f"FoundationDB client library libfdb_c.so not found: install the {CLIENT_PACKAGE} package "
    "(https://github.com/apple/foundationdb/releases/tag/7.3.69) or use a sqlite:/// store URL"
)

P = ParamSpec("P")
R = TypeVar("R")
_UNSET = object()

# The exception types translated at the boundary; `fdb.FDBError` once the library is loaded.
_fdb_errors: tuple[type[BaseException], ...] = ()


class FDBClientMissing(RuntimeError):
    """libfdb_c could not be loaded; the message says what to install."""


class FDBApiVersionMismatch(RuntimeError):
    """libfdb_c is there but does not support API 730 (or another API version is loaded)."""


def writable_cluster_file(path: str, scratch: str | None = None) -> str:
    """`path` if the client can rewrite it in place, else a private writable copy of it.

    The FoundationDB client rewrites its cluster file when the coordinators change; a read-only
    mount (a ConfigMap) makes it log errors and keep the stale file. The copy lives in `scratch`
    (default: the temporary directory, an emptyDir in the pods) and is refreshed at every start.
    """
    if os.access(path, os.W_OK) and os.access(os.path.dirname(path) or ".", os.W_OK):
        return path
    directory = scratch or tempfile.gettempdir()
    os.makedirs(directory, exist_ok=True)
    copy = os.path.join(directory, "fdb.cluster")
    shutil.copyfile(path, copy)
    os.chmod(copy, 0o600)
    return copy


def cluster_file_from_url(url: str) -> str | None:
    """`fdb://` → None (the default cluster file); `fdb:///path/fdb.cluster` → that path."""
    parts = urlsplit(url)
    if parts.scheme != "fdb":
        raise ValueError(f"not an fdb:// URL: {url!r}")
    if parts.netloc or parts.query or (parts.path and not parts.path.startswith("/")):
        raise ValueError(f"fdb URLs are fdb:// or fdb:///abs/path/fdb.cluster, not {url!r}")
    return parts.path or None


def translate(exc: BaseException) -> StoreError:
    """The `StoreError` for an `fdb.FDBError` (anything with an integer `code`)."""
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        raise TypeError(f"not a FoundationDB error: {exc!r}")
    try:
        description = str(exc.description)  # type: ignore[attr-defined]  # calls into libfdb_c
    except Exception:  # noqa: BLE001 — a missing description must not hide the code
        description = None
    return StoreError(code, description)


@contextmanager
def translating(error_types: tuple[type[BaseException], ...] | None = None) -> Iterator[None]:
    """Re-raise `error_types` (default: `fdb.FDBError`) as `StoreError` with the same code."""
    types = _fdb_errors if error_types is None else error_types
    try:
        yield
    except types as exc:
        raise translate(exc) from exc


def load_fdb() -> Any:
    """Select API 730 and return the `fdb` module; `FDBClientMissing` without libfdb_c."""
    global _fdb_errors
    import fdb

    try:
        fdb.api_version(API_VERSION)
    except RuntimeError as exc:  # the library loaded, but the versions do not fit
        raise FDBApiVersionMismatch(
            f"FoundationDB API {API_VERSION} unavailable: {exc} (install the {CLIENT_PACKAGE} package "
            "matching the foundationdb bindings)"
        ) from exc
    except Exception as exc:  # the bindings raise a bare Exception/OSError when the library is absent
        raise FDBClientMissing(MISSING_CLIENT) from exc
    _fdb_errors = (fdb.FDBError,)
    return fdb


class FDBTransaction(Transaction):
    """Forwards to one `fdb.Transaction`; FoundationDB does RYW, conflicts and limits itself."""

    def __init__(self, db: FDBDatabase, tr: Any) -> None:
        super().__init__(db)
        self._modes = (db.streaming_want_all, db.streaming_exact)
        self._tr = tr
        self._wrote = False
        self._stamp_future: Any = None

    # The primitives are FoundationDB's own; the public methods below never call them.
    def _read(self, key: bytes, snapshot: bool = False) -> bytes | None:
        return self.get(key, snapshot=snapshot)

    def _read_range(self, begin: bytes, end: bytes, reverse: bool, limit: int = 0) -> Iterator[KeyValue]:
        return iter(self.get_range(begin, end, limit=limit, reverse=reverse))

    def _commit(self) -> bytes | None:
        raise NotImplementedError("FDBTransaction.commit talks to the cluster directly")

    def _release(self) -> None:
        pass

    def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        _check_key(key)
        with translating():
            value = (self._tr.snapshot if snapshot else self._tr).get(key)
            return bytes(value) if value.present() else None

    def get_range(
        self, begin: bytes, end: bytes, *, limit: int = 0, reverse: bool = False, snapshot: bool = False
    ) -> list[KeyValue]:
        _check_key(begin)
        _check_key(end)
        if begin >= end:
            return []
        source = self._tr.snapshot if snapshot else self._tr
        # No limit: everything is read, so the largest batches (want_all); a limit: exactly it.
        mode = self._modes[1] if limit else self._modes[0]
        with translating():
            rows = source.get_range(begin, end, limit, reverse, streaming_mode=mode)
            return [(kv.key, kv.value) for kv in rows]  # fdb's KeyValue → an exact tuple

    def set_batch_priority(self) -> None:
        with translating():
            self._tr.options.set_priority_batch()

    def add_read_conflict_key(self, key: bytes) -> None:
        _check_key(key)
        with translating():
            self._tr.add_read_conflict_key(key)

    def set(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        _check_value(value)
        self._wrote = True
        with translating():
            self._tr.set(key, value)

    def clear(self, key: bytes) -> None:
        _check_key(key)
        self._wrote = True
        with translating():
            self._tr.clear(key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        _check_key(begin)
        _check_key(end)
        if begin >= end:
            return
        self._wrote = True
        with translating():
            self._tr.clear_range(begin, end)

    def add(self, key: bytes, delta: int) -> None:
        _check_key(key)
        self._wrote = True
        with translating():
            self._tr.add(key, (delta % (1 << 64)).to_bytes(8, "little"))

    def set_versionstamped_key(self, key: bytes, value: bytes) -> None:
        _check_key(key[:-4])
        _check_value(value)
        self._stamped_write()
        with translating():
            self._tr.set_versionstamped_key(key, value)

    def set_versionstamped_value(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        _check_value(value[:-4])
        self._stamped_write()
        with translating():
            self._tr.set_versionstamped_value(key, value)

    def _stamped_write(self) -> None:
        self._wrote = True
        if self._stamp_future is None:  # must be requested before commit
            with translating():
                self._stamp_future = self._tr.get_versionstamp()

    @property
    def has_writes(self) -> bool:
        return self._wrote

    def commit(self) -> None:
        faults = self.db.faults
        if self._wrote and faults.conflicts > 0:
            faults.conflicts -= 1
            raise StoreError(E.NOT_COMMITTED, "injected")
        with translating():
            self._tr.commit().wait()
            if self._stamp_future is not None:
                self._versionstamp = bytes(self._stamp_future.wait())
        if self._wrote and faults.commit_unknown_after > 0:
            faults.commit_unknown_after -= 1
            raise StoreError(E.COMMIT_UNKNOWN_RESULT, "injected after a successful commit")

    def on_error(self, exc: StoreError) -> None:
        """FoundationDB's `on_error`: back off and reset for a retryable code, else raise."""
        with translating():
            self._tr.on_error(exc.code).wait()
        self._wrote = False
        self._stamp_future = None
        self._versionstamp = None


class FDBDatabase(Database):
    """A FoundationDB cluster through the official bindings."""

    streaming_want_all: Any = None
    streaming_exact: Any = None

    def __init__(self, cluster_file: str | None = None, scratch: str | None = None) -> None:
        super().__init__()
        fdb = load_fdb()
        self.streaming_want_all = fdb.StreamingMode.want_all
        self.streaming_exact = fdb.StreamingMode.exact
        self.url = f"fdb://{cluster_file or ''}"
        if cluster_file is not None:
            cluster_file = writable_cluster_file(cluster_file, scratch)
        self.cluster_file = cluster_file
        with translating():
            self._db = fdb.open(cluster_file)
            self._db.options.set_transaction_retry_limit(self.retry_limit)
            self._db.options.set_transaction_timeout(int(self.timeout * 1000))

    def create_transaction(self) -> FDBTransaction:
        with translating():
            return FDBTransaction(self, self._db.create_transaction())

    def transact(self, fn: Callable[Concatenate[Transaction, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """FoundationDB's retry loop: `on_error` decides what is retried and how long to wait."""
        tr = self.create_transaction()
        while True:
            try:
                result = fn(tr, *args, **kwargs)
                tr.commit()
                return result
            except StoreError as exc:
                tr.on_error(exc)

    def watch(self, key: bytes, timeout: float, *, last_seen: bytes | object | None = _UNSET) -> bool:
        """True when the key changed (or may have) within `timeout`; retryable errors of the read,
        the commit or the watch itself are retried with FoundationDB's back-off until then. A retry
        compares against the value the first attempt read, so a change in between is not missed."""
        _check_key(key)
        deadline = time.monotonic() + timeout
        seen: list[bytes | object | None] = [last_seen]
        tr = self._db.create_transaction()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                with translating():
                    return self._watch_once(tr, key, remaining, seen)
            except StoreError as exc:
                with translating():
                    tr.on_error(exc.code).wait()  # backs off and resets; raises a non-retryable error

    @staticmethod
    def _watch_once(tr: Any, key: bytes, remaining: float, seen: list[bytes | object | None]) -> bool:
        # The watch must outlive the database's default transaction timeout.
        tr.options.set_timeout(int((remaining + 5) * 1000))
        value = tr.get(key)
        current = bytes(value) if value.present() else None
        if seen[0] is not _UNSET and current != seen[0]:
            return True
        seen[0] = current
        future = tr.watch(key)
        tr.commit().wait()
        fired = threading.Event()
        future.on_ready(lambda _f: fired.set())
        if not fired.wait(remaining):
            future.cancel()
            return False
        future.wait()  # raises the watch's error, if it failed rather than fired
        return True
