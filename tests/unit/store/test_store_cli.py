"""`python -m coditect.store` on a temp SQLite store, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel

from coditect import keyspace
from coditect.repo import RecordCodec, blobs
from coditect.store import Transaction, open_store

TID = str(uuid.uuid4())


class User(BaseModel):
    name: str


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coditect.store", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite://{tmp_path / 'store.db'}"
    db = open_store(url)
    users = keyspace.tenant(TID).sub(keyspace.USERS)
    codec = RecordCodec(User, 1)

    def fill(tr: Transaction) -> None:
        for i in range(5):
            blobs.write_value(tr, users.key(f"u{i}"), codec.encode(User(name=f"user {i}")))
        tr.add(keyspace.tenant(TID).sub(keyspace.COUNTERS).key("logins"), 42)
        tr.set(keyspace.PROBE.key(), b"\x00\x01binary")
        tr.set(keyspace.TENANT_ROOT.key(TID + "\x00sibling"), b"not under the tenant")

    db.transact(fill)
    db.close()
    return url


def test_keys_lists_tuple_decoded_keys_with_summaries(url: str) -> None:
    out = _cli(url, "keys", f"('t', '{TID}', 'users')", "--limit", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"('t', '{TID}', 'users', 'u0')")
    assert '{"v":1,"d":{"name":"user 0"}}' in lines[0]
    assert " B  " in lines[0]


def test_keys_under_tenant_excludes_string_siblings_and_decodes_counters(url: str) -> None:
    out = _cli(url, "keys", f"('t', '{TID}')")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 6
    assert "sibling" not in out.stdout
    assert "int64 42" in out.stdout


def test_count_and_get(url: str) -> None:
    assert _cli(url, "count", "('t',)").stdout.strip() == "7"
    assert _cli(url, "count", "()").stdout.strip() == "8"
    got = _cli(url, "get", f"('t', '{TID}', 'users', 'u3')")
    assert got.returncode == 0
    assert '"name": "user 3"' in got.stdout
    probe = _cli(url, "get", "('g', 'probe')")
    assert probe.stdout.strip() == repr(b"\x00\x01binary")
    missing = _cli(url, "get", "('g', 'nothing')")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_bad_tuple_literal_is_a_usage_error(url: str) -> None:
    out = _cli(url, "keys", "('t', oops")
    assert out.returncode == 2
    assert "not a Python literal" in out.stderr
