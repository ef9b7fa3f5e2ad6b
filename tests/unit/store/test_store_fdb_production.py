"""FoundationDB adapter details for production (issue 13 item 9), without a cluster: stand-ins for
the bindings' transaction/future objects record what the adapter asks of them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from coditect.store import StoreError, fdb_backend
from coditect.store.fdb_backend import FDBApiVersionMismatch, FDBClientMissing, FDBDatabase, FDBTransaction


class StandInFDBError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
        self.description = f"stand-in {code}"


RETRYABLE = {1007, 1009, 1020, 1037}


class Future:
    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def wait(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def on_ready(self, callback: Any) -> None:
        callback(self)

    def cancel(self) -> None:
        pass


class Value:
    def __init__(self, value: bytes | None) -> None:
        self.value = value

    def present(self) -> bool:
        return self.value is not None

    def __bytes__(self) -> bytes:
        return self.value or b""


class BindingsKeyValue:
    """Like `fdb.impl.KeyValue`: a range row with `.key` and `.value` (and not a tuple)."""

    def __init__(self, key: bytes, value: bytes) -> None:
        self.key, self.value = key, value


class Options:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append(name)


class Tr:
    """Scripted: `values` are what successive gets read, `watch_errors` what successive watches raise."""

    def __init__(self, values: list[bytes | None], watch_errors: list[Exception | None]) -> None:
        self.values, self.watch_errors = values, watch_errors
        self.options = Options()
        self.on_errors: list[int] = []
        self.ranges: list[dict[str, Any]] = []
        self.rows: list[BindingsKeyValue] = []
        self.snapshot = self

    def get(self, key: bytes) -> Value:
        return Value(self.values.pop(0))

    def watch(self, key: bytes) -> Future:
        return Future(error=self.watch_errors.pop(0))

    def commit(self) -> Future:
        return Future()

    def on_error(self, code: int) -> Future:
        self.on_errors.append(code)
        return Future(error=None if code in RETRYABLE else StandInFDBError(code))

    def get_range(
        self, begin: bytes, end: bytes, limit: int, reverse: bool, streaming_mode: str
    ) -> list[Any]:
        self.ranges.append({"limit": limit, "mode": streaming_mode})
        return self.rows


def database(tr: Tr) -> FDBDatabase:
    db = object.__new__(FDBDatabase)
    db.streaming_want_all, db.streaming_exact = "want_all", "exact"

    class Raw:
        def create_transaction(self) -> Tr:
            return tr

    db._db = Raw()
    return db


@pytest.fixture(autouse=True)
def stand_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fdb_backend, "_fdb_errors", (StandInFDBError,))


def test_a_watch_that_fails_retryably_is_retried_and_sees_the_change() -> None:
    tr = Tr(values=[b"1", b"2"], watch_errors=[StandInFDBError(1009)])
    assert database(tr).watch(b"k", 5) is True  # the retry read "2" != the first read "1"
    assert tr.on_errors == [1009]


def test_a_watch_retried_after_an_error_still_waits_when_nothing_changed() -> None:
    tr = Tr(values=[b"1", b"1"], watch_errors=[StandInFDBError(1007), None])
    assert database(tr).watch(b"k", 5) is True and tr.on_errors == [1007]


def test_a_non_retryable_watch_error_is_raised() -> None:
    tr = Tr(values=[b"1"], watch_errors=[StandInFDBError(2101)])
    with pytest.raises(StoreError) as info:
        database(tr).watch(b"k", 5)
    assert info.value.code == 2101


def test_range_reads_stream_want_all_without_a_limit_and_exact_with_one() -> None:
    tr = Tr([], [])
    t = FDBTransaction(database(tr), tr)
    t.get_range(b"a", b"z")
    t.get_range(b"a", b"z", limit=10)
    t.get_range(b"a", b"z", snapshot=True)
    assert tr.ranges == [
        {"limit": 0, "mode": "want_all"},
        {"limit": 10, "mode": "exact"},
        {"limit": 0, "mode": "want_all"},
    ]


def test_range_rows_become_exact_key_value_tuples() -> None:
    tr = Tr([], [])
    tr.rows = [BindingsKeyValue(b"a", b"1"), BindingsKeyValue(b"b", b"2")]
    rows = FDBTransaction(database(tr), tr).get_range(b"a", b"z")
    assert rows == [(b"a", b"1"), (b"b", b"2")]
    assert all(type(row) is tuple for row in rows)


def test_batch_priority_is_the_fdb_option_and_a_no_op_elsewhere(tmp_path: Path) -> None:
    tr = Tr([], [])
    FDBTransaction(database(tr), tr).set_batch_priority()
    assert tr.options.calls == ["set_priority_batch"]
    from coditect.store import open_store

    db = open_store(f"sqlite://{tmp_path / 's.db'}")
    db.transact(lambda t: t.set_batch_priority())
    db.close()


def test_the_loader_tells_a_missing_library_from_an_api_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import fdb

    def too_old(version: int) -> None:
        raise RuntimeError("the installed library supports a maximum version of 710.")

    monkeypatch.setattr(fdb, "api_version", too_old)
    with pytest.raises(FDBApiVersionMismatch, match=r"API 730 unavailable.*maximum version of 710"):
        fdb_backend.load_fdb()

    def missing(version: int) -> None:
        raise Exception("Unable to locate the FoundationDB API shared library!")

    monkeypatch.setattr(fdb, "api_version", missing)
    with pytest.raises(FDBClientMissing):
        fdb_backend.load_fdb()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_a_read_only_cluster_file_is_copied_to_a_writable_one(tmp_path: Path) -> None:
    mount = tmp_path / "dynamic-conf"
    mount.mkdir()
    (mount / "fdb.cluster").write_text("coditect:abc@10.0.0.1:4500\n")
    os.chmod(mount / "fdb.cluster", stat.S_IRUSR)
    os.chmod(mount, stat.S_IRUSR | stat.S_IXUSR)
    try:
        copy = fdb_backend.writable_cluster_file(str(mount / "fdb.cluster"), str(tmp_path / "scratch"))
    finally:
        os.chmod(mount, stat.S_IRWXU)
    assert copy == str(tmp_path / "scratch" / "fdb.cluster")
    assert Path(copy).read_text() == "coditect:abc@10.0.0.1:4500\n" and os.access(copy, os.W_OK)
    writable = tmp_path / "own.cluster"
    writable.write_text("x:y@1.2.3.4:4500\n")
    assert fdb_backend.writable_cluster_file(str(writable)) == str(writable)


def test_the_copy_decision_follows_write_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root every file is writable, so the decision is checked through os.access."""
    source = tmp_path / "fdb.cluster"
    source.write_text("coditect:abc@10.0.0.1:4500\n")
    monkeypatch.setattr(fdb_backend.os, "access", lambda path, mode: False)
    copy = fdb_backend.writable_cluster_file(str(source), str(tmp_path / "scratch"))
    assert copy != str(source) and Path(copy).read_text() == source.read_text()
