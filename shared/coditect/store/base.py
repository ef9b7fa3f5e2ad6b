"""The FoundationDB-shaped store interface every backend implements.

A backend implements a few primitives on `Transaction` (`_read`, `_read_range`, `_commit`, …)
and `Database.create_transaction`/`watch`; this module owns the invariants that must be the
same everywhere: argument types, size limits, read-your-writes, conflict ranges, the retry loop
with FoundationDB's backoff, and fault injection for tests.

Transactional functions take `tr` first so they compose (FoundationDB's convention):

    @transactional
    def rename(tr: Transaction, old: bytes, new: bytes) -> None: ...

    rename(db, a, b)   # runs in the retry loop and commits
    rename(tr, a, b)   # joins the caller's transaction: no commit, no loop
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from coditect.store import errors as E
from coditect.store.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")


# A range read's pair: `(key, value)`, an exact tuple — unpack it (`for key, value in rows`). Not a
# NamedTuple on purpose (docs/hotpath.md, "Store overhead against raw sqlite3"): building one per row
# cost ~120 µs per 1,000 rows, and the cyclic GC never untracks a tuple subclass (it does untrack an
# exact tuple holding only bytes), so every live pair of a large read was traced and promoted through
# the GC generations. SQLite's rows are already exact tuples of bytes and are returned as they are.
KeyValue = tuple[bytes, bytes]


def strinc(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (FoundationDB's strinc)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of only 0xff bytes has no successor")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes):
        raise TypeError(f"keys must be bytes, not {type(key).__name__}")
    if len(key) > E.MAX_KEY_SIZE:
        raise StoreError(E.KEY_TOO_LARGE, f"{len(key)} bytes")
    return key


def _check_value(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"values must be bytes, not {type(value).__name__}")
    if len(value) > E.MAX_VALUE_SIZE:
        raise StoreError(E.VALUE_TOO_LARGE, f"{len(value)} bytes")
    return value


def add_le(base: bytes | None, delta: bytes) -> bytes:
    """FoundationDB's ADD: little-endian, result as wide as the operand, wrapping."""
    width = len(delta)
    current = int.from_bytes((base or b"")[:width], "little")
    total = (current + int.from_bytes(delta, "little")) % (1 << (8 * width))
    return total.to_bytes(width, "little")


# Write-buffer entries: ("set", value) | ("clear", None) | ("add", delta-bytes).
_Op = tuple[str, bytes | None]


@dataclass
class Faults:
    """Test hook: make upcoming commits fail the way a cluster can.

    `commit_unknown_after` > 0: that many commits are applied, then raise 1021 anyway
    (the case that forces idempotent transaction bodies). `conflicts` > 0: that many commits
    raise 1020 without applying anything.
    """

    commit_unknown_after: int = 0
    conflicts: int = 0


@dataclass
class Transaction(ABC):
    """One FoundationDB-style transaction; use it from one thread, commit it once."""

    db: Database
    started: float = field(default_factory=time.monotonic)
    _writes: dict[bytes, _Op] = field(default_factory=dict)
    # The keys of `_writes`, sorted: range clears and range reads find theirs by bisection
    # instead of scanning every buffered write (a transaction writing many blobs clears a chunk
    # range per value, which made that scan quadratic).
    _write_keys: list[bytes] = field(default_factory=list)
    _cleared: list[tuple[bytes, bytes]] = field(default_factory=list)
    # (kind, key param, value, how many range clears preceded it): mutations apply in the order
    # issued, so a later clear_range must remove a stamped key that falls inside it.
    _stamped: list[tuple[str, bytes, bytes, int]] = field(default_factory=list)
    _read_ranges: list[tuple[bytes, bytes]] = field(default_factory=list)
    _size: int = 0
    _versionstamp: bytes | None = None

    # -- primitives a backend implements ------------------------------------------------
    @abstractmethod
    def _read(self, key: bytes, snapshot: bool = False) -> bytes | None:
        """The committed value at this transaction's read version (`snapshot`: the caller takes no
        read conflict on it, so the backend must not fail the transaction over it)."""

    @abstractmethod
    def _read_range(self, begin: bytes, end: bytes, reverse: bool, limit: int = 0) -> Iterator[KeyValue]:
        """Committed pairs in [begin, end), lazily, in key order (or reversed). `limit` is a
        hint (0 = none): the caller may stop earlier or, when merging its writes, read further."""

    @abstractmethod
    def _commit(self) -> bytes | None:
        """Atomically check conflicts and apply the buffer; the 10-byte versionstamp of a commit
        with versionstamped mutations (None without: it takes no version of its own)."""

    @abstractmethod
    def _release(self) -> None:
        """Drop any backend resources (an open read snapshot); called after commit or failure."""

    # -- reads -----------------------------------------------------------------------------
    def _check_age(self) -> None:
        if time.monotonic() - self.started > E.MAX_TRANSACTION_SECONDS:
            raise StoreError(E.TRANSACTION_TOO_OLD)

    def _cleared_at(self, key: bytes) -> bool:
        return bool(self._cleared) and any(b <= key < e for b, e in self._cleared)

    def _resolve(self, key: bytes, base: Callable[[], bytes | None]) -> bytes | None:
        op = self._writes.get(key)
        if op is None:
            return None if self._cleared_at(key) else base()
        kind, arg = op
        if kind == "set":
            return arg
        if kind == "clear":
            return None
        assert arg is not None
        return add_le(None if self._cleared_at(key) else base(), arg)

    def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        _check_key(key)
        self._check_age()
        op = self._writes.get(key)
        if op is not None and op[0] != "add":
            return op[1]
        if op is None and self._cleared_at(key):
            return None
        if not snapshot:
            self._read_ranges.append((key, key + b"\x00"))
        if op is None:  # the common case, kept short: a plain committed read
            return self._read(key, snapshot)
        return self._resolve(key, lambda: self._read(key, snapshot))

    def get_range(
        self, begin: bytes, end: bytes, *, limit: int = 0, reverse: bool = False, snapshot: bool = False
    ) -> list[KeyValue]:
        """Pairs in [begin, end) ordered like Python bytes, merged with this transaction's writes."""
        _check_key(begin)
        _check_key(end)
        self._check_age()
        if begin >= end:
            return []
        lo, hi = self._local_span(begin, end)
        if not self._cleared and lo == hi:
            # Nothing of ours in the range (the common case): the committed pairs as they are.
            rows = self._read_range(begin, end, reverse, limit)
            plain = list(itertools.islice(rows, limit) if limit else rows)
            if not snapshot:
                stopped = bool(limit) and len(plain) >= limit
                self._saw(*self._add_range_conflict(begin, end, plain, stopped, reverse), plain, reverse)
            return plain
        local = self._write_keys[lo:hi]
        if reverse:
            local.reverse()
        out, done = self._merged(begin, end, local, reverse, limit)
        if not snapshot:
            self._add_range_conflict(begin, end, out, done, reverse)
        return out

    def _merged(
        self, begin: bytes, end: bytes, local: list[bytes], reverse: bool, limit: int
    ) -> tuple[list[KeyValue], bool]:
        """The committed pairs of [begin, end) merged with this transaction's written keys
        `local` (in reading order); and whether `limit` stopped the read."""
        out: list[KeyValue] = []
        li = 0

        def emit(key: bytes, base: bytes | None) -> bool:
            value = self._resolve(key, lambda: base)
            if value is not None:
                out.append((key, value))
            return bool(limit) and len(out) >= limit

        def before(a: bytes, b: bytes) -> bool:
            return a > b if reverse else a < b

        done = False
        for key, value in self._read_range(begin, end, reverse, limit):
            while li < len(local) and before(local[li], key):
                done = emit(local[li], None)
                li += 1
                if done:
                    break
            if done:
                break
            if li < len(local) and local[li] == key:
                li += 1
            if emit(key, value):
                done = True
                break
        while not done and li < len(local):
            done = emit(local[li], None)
            li += 1
        return out, done

    def _add_range_conflict(
        self, begin: bytes, end: bytes, out: list[KeyValue], stopped: bool, reverse: bool
    ) -> tuple[bytes, bytes]:
        # As on FoundationDB: a read that stopped at its limit only conflicts up to where it stopped.
        if stopped and out:
            last = out[-1][0]
            begin, end = (last, end) if reverse else (begin, last + b"\x00")
        self._read_ranges.append((begin, end))
        return begin, end

    def _saw(self, begin: bytes, end: bytes, pairs: list[KeyValue], reverse: bool) -> None:  # noqa: B027
        """Hook: `pairs` (in reading order) are every committed pair of the read-conflict range
        [begin, end), as this transaction read them. A backend that checks state keeps them."""

    def get_range_startswith(
        self, prefix: bytes, *, limit: int = 0, reverse: bool = False, snapshot: bool = False
    ) -> list[KeyValue]:
        return self.get_range(prefix, strinc(prefix), limit=limit, reverse=reverse, snapshot=snapshot)

    def add_read_conflict_key(self, key: bytes) -> None:
        """FoundationDB's add_read_conflict_key: the commit fails with 1020 if `key` was written
        after this transaction's read version, as if it had been read (without reading it)."""
        _check_key(key)
        self._read_ranges.append((key, key + b"\x00"))

    @property
    def snapshot(self) -> SnapshotView:
        """Reads through this view add no read conflict (FoundationDB's snapshot reads)."""
        return SnapshotView(self)

    # -- the write buffer ----------------------------------------------------------------------
    def _record(self, key: bytes, op: _Op) -> None:
        if key not in self._writes:
            bisect.insort(self._write_keys, key)
        self._writes[key] = op

    def _supersede_stamped(self, begin: bytes, end: bytes) -> None:
        """A later set/clear replaces earlier SET_VERSIONSTAMPED_VALUEs of keys in [begin, end)
        (their keys are known now; stamped *keys* are checked against later clears at commit)."""
        if self._stamped:
            self._stamped = [s for s in self._stamped if not (s[0] == "value" and begin <= s[1] < end)]

    def _local_span(self, begin: bytes, end: bytes) -> tuple[int, int]:
        """Indexes of this transaction's buffered keys in [begin, end)."""
        return bisect.bisect_left(self._write_keys, begin), bisect.bisect_left(self._write_keys, end)

    # -- writes ----------------------------------------------------------------------------
    def _grow(self, n: int) -> None:
        self._size += n
        if self._size > E.MAX_TRANSACTION_SIZE:
            raise StoreError(E.TRANSACTION_TOO_LARGE, f"{self._size} bytes")

    def set(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        _check_value(value)
        self._check_age()
        self._grow(len(key) + len(value))
        self._supersede_stamped(key, key + b"\x00")
        self._record(key, ("set", value))

    def clear(self, key: bytes) -> None:
        _check_key(key)
        self._grow(len(key))
        self._supersede_stamped(key, key + b"\x00")
        self._record(key, ("clear", None))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        _check_key(begin)
        _check_key(end)
        if begin >= end:
            return
        self._grow(len(begin) + len(end))
        lo, hi = self._local_span(begin, end)
        for k in self._write_keys[lo:hi]:
            del self._writes[k]
        del self._write_keys[lo:hi]
        self._supersede_stamped(begin, end)
        self._cleared.append((begin, end))

    def clear_range_startswith(self, prefix: bytes) -> None:
        self.clear_range(prefix, strinc(prefix))

    def add(self, key: bytes, delta: int) -> None:
        """Atomic add of a signed 64-bit integer (8-byte little-endian); adds no read conflict."""
        _check_key(key)
        operand = (delta % (1 << 64)).to_bytes(8, "little")
        self._grow(len(key) + 8)
        op = self._writes.get(key)
        if op is None:
            self._record(key, ("set", operand) if self._cleared_at(key) else ("add", operand))
        elif op[0] == "add":
            assert op[1] is not None
            self._writes[key] = ("add", add_le(op[1], operand))
        else:
            self._writes[key] = ("set", add_le(op[1], operand))

    def set_versionstamped_key(self, key: bytes, value: bytes) -> None:
        """FoundationDB's SET_VERSIONSTAMPED_KEY: `key` ends with the 4-byte little-endian offset
        of a 10-byte placeholder that the commit replaces with its versionstamp."""
        _check_key(key[:-4])
        _check_value(value)
        self._grow(len(key) + len(value))
        self._stamped.append(("key", key, value, len(self._cleared)))

    def set_versionstamped_value(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        _check_value(value[:-4])
        self._grow(len(key) + len(value))
        self._stamped.append(("value", key, value, len(self._cleared)))

    def set_batch_priority(self) -> None:  # noqa: B027 — optional: a no-op for embedded backends
        """Run this transaction at batch priority: bulk work (purge, GC, export) that must yield
        to user traffic under load. FoundationDB's `priority_batch`; a no-op on one machine."""

    # -- commit ----------------------------------------------------------------------------
    @property
    def has_writes(self) -> bool:
        return bool(self._writes or self._cleared or self._stamped)

    def commit(self) -> None:
        self._check_age()
        try:
            if self.has_writes:
                faults = self.db.faults
                if faults.conflicts > 0:
                    faults.conflicts -= 1
                    raise StoreError(E.NOT_COMMITTED, "injected")
                self._versionstamp = self._commit()
                if faults.commit_unknown_after > 0:
                    faults.commit_unknown_after -= 1
                    raise StoreError(E.COMMIT_UNKNOWN_RESULT, "injected after a successful commit")
        finally:
            self._release()

    def get_versionstamp(self) -> bytes:
        """The committed versionstamp (10 bytes); only after a commit with a versionstamped mutation
        (FoundationDB's future is requested for those alone; SQLite versions only those)."""
        if self._versionstamp is None:
            raise RuntimeError("no versionstamp: the transaction has not committed a versionstamped mutation")
        return self._versionstamp


class SnapshotView:
    """`tr.snapshot`: the same reads, without read conflicts."""

    def __init__(self, tr: Transaction) -> None:
        self._tr = tr

    def get(self, key: bytes) -> bytes | None:
        return self._tr.get(key, snapshot=True)

    def get_range(self, begin: bytes, end: bytes, *, limit: int = 0, reverse: bool = False) -> list[KeyValue]:
        return self._tr.get_range(begin, end, limit=limit, reverse=reverse, snapshot=True)

    def get_range_startswith(self, prefix: bytes, *, limit: int = 0, reverse: bool = False) -> list[KeyValue]:
        return self._tr.get_range_startswith(prefix, limit=limit, reverse=reverse, snapshot=True)


class Database(ABC):
    """A store handle, safe to share between threads; `transact` is the way to use it."""

    url: str
    retry_limit: int = 100
    timeout: float = 30.0

    def __init__(self) -> None:
        self.faults = Faults()

    @abstractmethod
    def create_transaction(self) -> Transaction: ...

    @abstractmethod
    def watch(self, key: bytes, timeout: float, *, last_seen: bytes | object | None = ...) -> bool:
        """Block until `key`'s value differs from `last_seen` (default: its value now), up to
        `timeout` seconds; True when it changed. Another process's commit wakes it."""

    def close(self) -> None:  # noqa: B027 — optional for backends without resources
        """Release connections."""

    def read(self, key: bytes) -> bytes | None:
        """The committed value of `key`: a transaction of exactly this one read.

        The same answer as `transact(lambda tr: tr.get(key))` (a single read in its own
        transaction is trivially serializable, and nothing is written, so nothing can conflict);
        backends may answer it without a transaction object. For a request that reads exactly
        one key — more reads that must agree with each other belong in one `transact`.
        """
        return self.transact(_get, key)

    def transact(self, fn: Callable[Concatenate[Transaction, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `fn(tr, …)` in FoundationDB's retry loop, commit, and return its result.

        Retryable errors (1007, 1020, 1021) are retried with 0.01 s backoff doubling to 1 s,
        jittered, up to `retry_limit` attempts and `timeout` seconds (then 1031).
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        for attempt in range(self.retry_limit + 1):
            tr = self.create_transaction()
            try:
                result = fn(tr, *args, **kwargs)
                tr.commit()
                return result
            except StoreError as exc:
                if not exc.retryable or attempt == self.retry_limit:
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreError(E.TRANSACTION_TIMED_OUT, f"after {attempt + 1} attempts") from exc
            finally:
                tr._release()
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")


def _get(tr: Transaction, key: bytes) -> bytes | None:
    return tr.get(key)


def transactional(fn: Callable[Concatenate[Transaction, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Run `fn` in the retry loop when given a Database; join the transaction when given one."""

    @functools.wraps(fn)
    def wrapper(db_or_tr: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        if isinstance(db_or_tr, Transaction):
            return fn(db_or_tr, *args, **kwargs)
        return db_or_tr.transact(fn, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper  # type: ignore[return-value]
