from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from coditect.errors import BadRequest
from coditect.identity import cursor_keys
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
        got.extend(S.unpack(key)[0] for key, _ in kvs)
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
        got.extend(S.unpack(key)[0] for key, _ in kvs)
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
        (S, "AAAA", "q"),
    ]
    for sub, cur, query in cases:
        with pytest.raises(BadRequest) as info:
            _page(db, sub, cur, query=query)
        assert info.value.code == "invalid_cursor"
        assert info.value.status == 400


def test_an_empty_cursor_is_the_first_page(db: Database) -> None:
    _fill(db, S, range(10))
    assert _page(db, S, "") == _page(db, S, None)


def test_cursor_keys_come_from_the_key_directory_and_rotate(
    db: Database, cursor_key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db, S, range(10))
    _, old_cursor = _page(db, S, None)  # first use creates the key (the local stack's first start)
    assert old_cursor is not None
    (old,) = cursor_key_dir.glob("cursor-*.secret")
    assert old.stat().st_mode & 0o777 == 0o600 and len(old.read_bytes()) >= 32
    assert _page(db, S, _forge(old_cursor, old.read_bytes()))[0][0][0] == S.key(4)  # _forge is right
    # A known public constant no longer forges a cursor: the key is the random file.
    forged = _forge(old_cursor, b"coditect-cursor-default-key-v1")
    with pytest.raises(BadRequest):
        _page(db, S, forged)
    # Rotation: publish + switch to a new key; cursors of the old key keep working.
    cursor_keys.generate_cursor_key(cursor_key_dir, "next")
    cursor_keys.forget()
    kvs, new_cursor = _page(db, S, old_cursor)
    assert S.unpack(kvs[0][0]) == (4,) and new_cursor is not None
    assert _page(db, S, new_cursor)[0][0][0] == S.key(8)
    # Retire: once the old key is deleted its cursors fail; the new key's still work.
    old.unlink()
    cursor_keys.forget()
    with pytest.raises(BadRequest):
        _page(db, S, old_cursor)
    assert _page(db, S, new_cursor)[0][0][0] == S.key(8)


def test_no_key_and_a_read_only_directory_fails_instead_of_a_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    from coditect.config import get_settings
    from coditect.identity.signing_keys import KeyRingError

    empty = tmp_path / "mounted"
    empty.mkdir()
    empty.chmod(0o500)
    monkeypatch.setenv("CODITECT_KEYS_DIR", str(empty))
    get_settings.cache_clear()
    cursor_keys.forget()
    _fill(db, S, range(10))
    try:
        if os.geteuid() != 0:  # root writes anyway; the missing-file error is checked below
            with pytest.raises(KeyRingError):
                _page(db, S, None)
        with pytest.raises(KeyRingError, match="no cursor key"):
            cursor_keys.read_cursor_keys(tmp_path / "absent")
    finally:
        empty.chmod(0o700)


def _forge(cursor: str, key: bytes) -> str:
    """`cursor` re-MAC'd with `key` (what anyone knowing a default key could do)."""
    import hashlib
    import struct

    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    begin, end = S.range()
    from coditect.repo.cursor import _common_prefix

    prefix = _common_prefix(begin, end)
    full = prefix + raw[17:]
    h = hashlib.blake2b(key=key, digest_size=16, person=b"coditect-cursor")
    for part in (b"q", begin, end, full):
        h.update(struct.pack(">I", len(part)) + part)
    return base64.urlsafe_b64encode(raw[:1] + h.digest() + raw[17:]).rstrip(b"=").decode()


def test_limit_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError):
        _page(db, S, None, limit=0)
