from __future__ import annotations

import base64

import pytest

from coditect.config import get_settings
from coditect.errors import BadRequest
from coditect.keyspace import Subspace
from coditect.repo import paginate
from coditect.store import Database, KeyValue, Transaction

S = Subspace(("test", "page"))
OTHER = Subspace(("test", "other"))


def _fill(db: Database, subspace: Subspace, ids: range) -> None:
    def body(tr: Transaction) -> None:
        for i in ids:
            tr.set(subspace.key(i), b"v%d" % i)

    db.transact(body)


def _page(
    db: Database,
    sub: Subspace,
    cursor: str | None,
    *,
    query: str = "q",
    limit: int = 4,
    reverse: bool = False,
) -> tuple[list[KeyValue], str | None]:
    b, e = sub.range()
    return db.transact(
        lambda tr: paginate(tr, b, e, limit=limit, cursor=cursor, query=query, reverse=reverse)
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_pages_cover_everything_once(db: Database, reverse: bool) -> None:
    _fill(db, S, range(10))
    got: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        kvs, cursor = _page(db, S, cursor, reverse=reverse)
        pages += 1
        got.extend(S.unpack(kv.key)[0] for kv in kvs)
        if cursor is None:
            break
    assert got == (list(range(9, -1, -1)) if reverse else list(range(10)))
    assert pages == 3


def test_exact_multiple_has_no_cursor_on_last_page(db: Database) -> None:
    _fill(db, S, range(8))
    kvs, cursor = _page(db, S, None)
    assert len(kvs) == 4 and cursor is not None
    kvs, cursor = _page(db, S, cursor)
    assert len(kvs) == 4 and cursor is None


def test_appends_while_paging_are_not_lost_or_duplicated(db: Database) -> None:
    _fill(db, S, range(0, 200, 10))  # 0, 10, ..., 190
    got: list[int] = []
    ahead: list[int] = []  # appended after the page boundary: the listing must still show them
    cursor: str | None = None
    while True:
        kvs, cursor = _page(db, S, cursor)
        got.extend(S.unpack(kv.key)[0] for kv in kvs)
        if cursor is None:
            break
        last = got[-1]
        behind, next_to, tail = last - 5, last + 5, 1000 + last
        _fill(db, S, range(behind, behind + 1))
        _fill(db, S, range(next_to, next_to + 1))
        _fill(db, S, range(tail, tail + 1))
        ahead += [next_to, tail]
    assert got == sorted(set(got))  # strictly increasing: nothing repeated
    assert set(range(0, 200, 10)) <= set(got)  # nothing present at the start is lost
    assert ahead and set(ahead) <= set(got)  # appends ahead of the cursor are seen


def test_foreign_tampered_and_garbage_cursors(db: Database) -> None:
    _fill(db, S, range(10))
    _fill(db, OTHER, range(10))
    _, cursor = _page(db, S, None)
    assert cursor is not None
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-1] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    cases = [
        (S, tampered, "q"),
        (S, cursor, "another query"),
        (OTHER, cursor, "q"),  # same query id, another range (another tenant)
        (S, "garbage!!", "q"),
        (S, "", "q"),
        (S, "AAAA", "q"),
    ]
    for sub, cur, query in cases:
        with pytest.raises(BadRequest) as info:
            _page(db, sub, cur, query=query)
        assert info.value.code == "invalid_cursor"
        assert info.value.status == 400


def test_cursor_key_from_settings(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(db, S, range(10))

    def process_with_key(key: str) -> None:  # settings are read once per process
        monkeypatch.setenv("CODITECT_CURSOR_KEY", key)
        get_settings.cache_clear()

    process_with_key("one")
    _, cursor = _page(db, S, None)
    process_with_key("two")
    with pytest.raises(BadRequest):
        _page(db, S, cursor)
    process_with_key("one")
    kvs, _ = _page(db, S, cursor)
    assert S.unpack(kvs[0].key) == (4,)


def test_limit_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError):
        _page(db, S, None, limit=0)
