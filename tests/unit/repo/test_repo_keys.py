from __future__ import annotations

import uuid

import fdb.tuple as fdbtuple
import pytest

from coditect import keyspace
from coditect.keyspace import Subspace

TID = str(uuid.uuid4())


def test_subspace_key_is_tuple_packed_and_unpacks() -> None:
    s = Subspace(("t", TID, "users"))
    key = s.key("u1", 3)
    assert key == fdbtuple.pack(("t", TID, "users", "u1", 3))
    assert s.unpack(key) == ("u1", 3)
    assert key in s
    assert s.raw_prefix not in s  # the prefix itself is not a key of the subspace
    assert b"other" not in s


def test_unpack_rejects_foreign_key() -> None:
    with pytest.raises(ValueError, match="not in subspace"):
        Subspace(("a",)).unpack(fdbtuple.pack(("b", 1)))


def test_range_excludes_string_prefix_siblings() -> None:
    s = Subspace(("t",))
    begin, end = s.range("acme")
    inside = s.key("acme", "x")
    sibling = s.key("acme2", "x")
    assert begin <= inside < end
    assert not (begin <= sibling < end)


def test_sub_nests() -> None:
    assert Subspace(("a",)).sub("b", 1) == Subspace(("a", "b", 1))
    assert Subspace(("a",)).sub("b").key("c") == fdbtuple.pack(("a", "b", "c"))


def test_tenant_requires_canonical_uuid() -> None:
    assert keyspace.tenant(TID).prefix == ("t", TID)
    for bad in ["acme", TID.upper(), "{" + TID + "}", TID.replace("-", ""), ""]:
        with pytest.raises(ValueError):
            keyspace.tenant(bad)
    with pytest.raises(ValueError):
        keyspace.tenant(uuid.UUID(TID))  # type: ignore[arg-type]


def test_session_requires_canonical_uuids_every_time() -> None:
    sid = str(uuid.uuid4())
    assert keyspace.session(TID, sid).prefix == ("t", TID, keyspace.SESSIONS, sid)
    assert keyspace.session(TID, sid) is keyspace.session(TID, sid)  # cached once valid
    for bad in [sid.upper(), sid.replace("-", ""), "s1", ""]:
        for _ in range(2):  # a refusal is not cached as an answer
            with pytest.raises(ValueError):
                keyspace.session(TID, bad)
    with pytest.raises(ValueError):
        keyspace.session(TID.upper(), sid)


def test_tenant_id_of() -> None:
    assert keyspace.tenant_id_of(keyspace.tenant(TID).sub(keyspace.USERS).key("u")) == TID
    assert keyspace.tenant_id_of(keyspace.PROBE.key()) is None


def test_global_and_tenant_subspaces_are_distinct_and_documented() -> None:
    prefixes = [s.prefix for s in keyspace.GLOBAL_SUBSPACES.values()]
    assert len(set(prefixes)) == len(prefixes)
    assert all(p[0] == "g" for p in prefixes)
    assert len(set(keyspace.TENANT_SUBSPACES)) == len(keyspace.TENANT_SUBSPACES)
    doc = keyspace.__doc__ or ""
    for name in keyspace.TENANT_SUBSPACES:
        assert f'"{name}"' in doc
    for name in keyspace.GLOBAL_SUBSPACES:
        assert f'"{name}"' in doc


def test_dedupe_key() -> None:
    assert keyspace.dedupe_key("src", "id1") == fdbtuple.pack(("g", "dedupe", "src", "id1"))
