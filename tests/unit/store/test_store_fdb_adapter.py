"""The FoundationDB adapter without a cluster: URL parsing, error translation, missing libfdb_c."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

from coditect.config import Settings
from coditect.store import StoreError, fdb_backend, open_store
from coditect.store.fdb_backend import (
    MISSING_CLIENT,
    FDBClientMissing,
    cluster_file_from_url,
    translate,
    translating,
)

HAVE_LIBFDB = ctypes.util.find_library("fdb_c") is not None


class StandInFDBError(Exception):
    """A stand-in for `fdb.FDBError` (which cannot be imported without libfdb_c): it has `.code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
        self.description = f"stand-in error {code}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [("fdb://", None), ("fdb:///etc/foundationdb/fdb.cluster", "/etc/foundationdb/fdb.cluster")],
)
def test_cluster_file_from_url(url: str, expected: str | None) -> None:
    assert cluster_file_from_url(url) == expected


@pytest.mark.parametrize(
    "url", ["fdb://host/fdb.cluster", "fdb:relative.cluster", "fdb:///x?y=1", "sqlite:///x"]
)
def test_bad_fdb_urls(url: str) -> None:
    with pytest.raises(ValueError):
        cluster_file_from_url(url)


def test_open_store_passes_cluster_file(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    class Recorder:
        def __init__(self, cluster_file: str | None) -> None:
            seen.append(cluster_file)

    monkeypatch.setattr(fdb_backend, "FDBDatabase", Recorder)
    open_store("fdb://")
    open_store("fdb:///srv/fdb.cluster")
    monkeypatch.setenv("CODITECT_STORE", "fdb:///from/env.cluster")
    open_store(Settings().store_url)
    assert seen == [None, "/srv/fdb.cluster", "/from/env.cluster"]


@pytest.mark.parametrize("code", [1007, 1020, 1021, 1031, 2101, 2102, 2103, 1009])
def test_translate_keeps_the_code(code: int) -> None:
    err = translate(StandInFDBError(code))
    assert isinstance(err, StoreError)
    assert err.code == code
    assert f"stand-in error {code}" in str(err)


def test_translate_names_and_retryability() -> None:
    assert translate(StandInFDBError(1020)).name == "not_committed"
    assert translate(StandInFDBError(1020)).retryable
    assert not translate(StandInFDBError(2102)).retryable


def test_translate_refuses_non_fdb_errors() -> None:
    with pytest.raises(TypeError):
        translate(ValueError("no code"))


def test_translating_maps_only_the_given_types() -> None:
    with pytest.raises(StoreError) as info, translating((StandInFDBError,)):
        raise StandInFDBError(1021)
    assert info.value.code == 1021
    assert isinstance(info.value.__cause__, StandInFDBError)
    with pytest.raises(KeyError), translating((StandInFDBError,)):
        raise KeyError("other errors pass through")


@pytest.mark.skipif(HAVE_LIBFDB, reason="libfdb_c is installed here")
def test_missing_libfdb_c_is_one_line_saying_what_to_install() -> None:
    with pytest.raises(FDBClientMissing) as info:
        open_store("fdb://")
    message = str(info.value)
    assert message == MISSING_CLIENT
    assert "\n" not in message
    assert "foundationdb-clients 7.3.69" in message and "libfdb_c" in message


def test_missing_library_reported_even_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    import fdb

    def fail(version: int) -> None:
        raise Exception("Unable to locate the FoundationDB API shared library!")

    monkeypatch.setattr(fdb, "api_version", fail)
    with pytest.raises(FDBClientMissing, match="foundationdb-clients"):
        fdb_backend.FDBDatabase(None)


def test_importing_the_store_does_not_load_libfdb_c() -> None:
    code = "import sys, coditect.store, coditect.keyspace, coditect.repo; print('fdb.impl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
