from __future__ import annotations

import pytest
from pydantic import BaseModel

from coditect.keyspace import Subspace
from coditect.repo import Index, RecordCodec, Table, UniqueViolation
from coditect.store import Database, Transaction

ROOT = Subspace(("test", "tbl"))


class User(BaseModel):
    email: str | None
    team: str
    bio: str = ""


def _table() -> Table[User]:
    return Table(
        ROOT.sub("users"),
        RecordCodec(User, 1),
        indexes=[
            Index(
                "email", ROOT.sub("by_email"), lambda u: None if u.email is None else (u.email,), unique=True
            ),
            Index("team", ROOT.sub("by_team"), lambda u: (u.team,)),
        ],
    )


def _all_keys(db: Database) -> list[tuple[object, ...]]:
    b, e = ROOT.range()
    return [ROOT.unpack(key) for key, _ in db.transact(lambda tr: tr.get_range(b, e))]


def test_put_writes_record_and_indexes(db: Database) -> None:
    t = _table()
    db.transact(t.put, ("u1",), User(email="a@x", team="red"))
    assert db.transact(t.get, "u1") == User(email="a@x", team="red")
    assert db.transact(t.lookup, "email", "a@x") == ("u1",)
    assert db.transact(t.find, "team", "red") == [("u1",)]
    assert sorted(_all_keys(db), key=repr) == sorted(
        [("users", "u1"), ("by_email", "a@x"), ("by_team", "red", "u1")], key=repr
    )


@pytest.mark.parametrize("pass_previous", [False, True])
def test_update_moves_index_entries(db: Database, pass_previous: bool) -> None:
    t = _table()
    old = User(email="a@x", team="red")
    db.transact(t.put, ("u1",), old)
    new = User(email="b@x", team="blue")
    db.transact(lambda tr: t.put(tr, ("u1",), new, previous=old if pass_previous else None))
    assert db.transact(t.lookup, "email", "a@x") is None
    assert db.transact(t.lookup, "email", "b@x") == ("u1",)
    assert db.transact(t.find, "team", "red") == []
    assert db.transact(t.find, "team", "blue") == [("u1",)]
    assert len(_all_keys(db)) == 3


def test_none_key_fn_means_not_indexed(db: Database) -> None:
    t = _table()
    db.transact(t.put, ("u1",), User(email="a@x", team="red"))
    db.transact(t.put, ("u1",), User(email=None, team="red"))
    assert db.transact(t.lookup, "email", "a@x") is None
    assert ("by_email", "a@x") not in _all_keys(db)


def test_delete_removes_record_and_entries(db: Database) -> None:
    t = _table()
    u = User(email="a@x", team="red", bio="x" * 30_000)  # chunked record too
    db.transact(t.put, ("u1",), u)
    db.transact(t.delete, ("u1",), u)
    assert _all_keys(db) == []
    assert db.transact(t.get, "u1") is None


def test_unique_violation_and_same_owner_rewrite(db: Database) -> None:
    t = _table()
    db.transact(t.put, ("u1",), User(email="a@x", team="red"))
    with pytest.raises(UniqueViolation) as info:
        db.transact(t.put, ("u2",), User(email="a@x", team="blue"))
    assert info.value.index_name == "email"
    assert info.value.status == 409
    assert db.transact(t.get, "u2") is None  # nothing of the failed put was committed
    assert db.transact(t.find, "team", "blue") == []
    db.transact(t.put, ("u1",), User(email="a@x", team="green"))  # own value: fine


def test_non_unique_index_orders_by_value_then_pk(db: Database) -> None:
    t = _table()

    def fill(tr: Transaction) -> None:
        for pk, team in [("u3", "red"), ("u1", "red"), ("u2", "blue")]:
            t.put(tr, (pk,), User(email=None, team=team))

    db.transact(fill)
    assert db.transact(t.find, "team", "red") == [("u1",), ("u3",)]
    assert db.transact(lambda tr: t.find(tr, "team")) == [("blue", "u2"), ("red", "u1"), ("red", "u3")]


def test_scan_and_page(db: Database) -> None:
    t = _table()

    def fill(tr: Transaction) -> None:
        for i in range(7):
            t.put(tr, ("org", i), User(email=None, team="t", bio="y" * (12_000 if i == 3 else 1)))

    db.transact(fill)
    assert [pk for pk, _ in db.transact(t.scan, "org")] == [("org", i) for i in range(7)]
    seen: list[tuple[object, ...]] = []
    cursor: str | None = None
    while True:
        rows, cursor = db.transact(lambda tr: t.page(tr, "org", limit=3, cursor=cursor, query="q"))  # noqa: B023
        seen.extend(pk for pk, _ in rows)
        if cursor is None:
            break
    assert seen == [("org", i) for i in range(7)]


def test_unknown_index_name(db: Database) -> None:
    with pytest.raises(KeyError):
        db.transact(_table().lookup, "team", "red")
