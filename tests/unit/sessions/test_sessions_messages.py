from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path

import pytest
from pydantic import ValidationError

from coditect.errors import BadRequest, NotFound, PayloadTooLarge
from coditect.identity.context import TenantContext
from coditect.sessions import conversations, messages
from coditect.sessions.models import CONTENT_MAX_BYTES, MessageCreate
from coditect.store import Database
from tests.unit.sessions import workers
from tests.unit.sessions.helpers import all_messages, append, make_conversation, make_session


@pytest.fixture
def conv(db: Database, alice: TenantContext) -> str:
    return make_conversation(db, alice, make_session(db, alice))


def test_append_then_list_in_commit_order_with_increasing_seq(
    db: Database, alice: TenantContext, conv: str
) -> None:
    seqs = [append(db, alice, conv, f"m{i}") for i in range(30)]
    listed = all_messages(db, alice, conv, limit=7)
    assert [m.content for m in listed] == [f"m{i}" for i in range(30)]
    assert [m.seq for m in listed] == seqs == sorted(set(seqs))
    assert all(m.conversation_id == conv for m in listed)
    assert conversations.get(db, alice, conv).message_count == 30


def test_large_content_round_trips_chunked(db: Database, alice: TenantContext, conv: str) -> None:
    big = "é" * (CONTENT_MAX_BYTES // 2)  # exactly 1 MiB of UTF-8
    control = "\x01" * 200_000  # escapes to 6 bytes each in JSON
    append(db, alice, conv, "small")
    append(db, alice, conv, big)
    append(db, alice, conv, control)
    got = all_messages(db, alice, conv, limit=1)
    assert [m.content for m in got] == ["small", big, control]


def test_content_over_one_mib_is_413_and_writes_nothing(
    db: Database, alice: TenantContext, conv: str
) -> None:
    with pytest.raises(PayloadTooLarge) as err:
        append(db, alice, conv, "x" * (CONTENT_MAX_BYTES + 1))
    assert err.value.code == "content_too_large"
    assert all_messages(db, alice, conv) == []
    assert conversations.get(db, alice, conv).message_count == 0


def test_role_outside_the_set_is_refused() -> None:
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"role": "admin", "content": "x"})
    with pytest.raises(ValidationError):
        MessageCreate.model_validate({"role": "user", "content": "x", "seq": 1})


def test_append_is_not_duplicated_when_commit_result_is_unknown(
    db: Database, alice: TenantContext, conv: str
) -> None:
    db.faults.commit_unknown_after = 1
    message = messages.append(db, alice, conv, MessageCreate(role="user", content="once"))
    listed = all_messages(db, alice, conv)
    assert [(m.id, m.seq, m.content) for m in listed] == [(message.id, message.seq, "once")]
    assert conversations.get(db, alice, conv).message_count == 1


def test_others_cannot_read_or_append(
    db: Database, alice: TenantContext, bob_same_tenant: TenantContext, conv: str
) -> None:
    append(db, alice, conv, "secret")
    with pytest.raises(NotFound):
        messages.page(db, bob_same_tenant, conv, limit=10, cursor=None)
    with pytest.raises(NotFound):
        append(db, bob_same_tenant, conv, "intrusion")
    assert [m.content for m in all_messages(db, alice, conv)] == ["secret"]


def test_cursor_is_bound_to_its_conversation(db: Database, alice: TenantContext, conv: str) -> None:
    other = make_conversation(db, alice, make_session(db, alice))
    for i in range(3):
        append(db, alice, conv, str(i))
        append(db, alice, other, str(i))
    _, cursor = messages.page(db, alice, conv, limit=1, cursor=None)
    assert cursor is not None
    with pytest.raises(BadRequest) as err:
        messages.page(db, alice, other, limit=1, cursor=cursor)
    assert err.value.code == "invalid_cursor"
    tampered = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]  # a byte of the MAC
    with pytest.raises(BadRequest):
        messages.page(db, alice, conv, limit=1, cursor=tampered)


def test_pages_see_every_message_once_while_appending(db: Database, alice: TenantContext, conv: str) -> None:
    for i in range(25):
        append(db, alice, conv, f"a{i}")
    seen, cursor, extra = [], None, 0
    while True:
        page, cursor = messages.page(db, alice, conv, limit=4, cursor=cursor)
        seen.extend(m.content for m in page)
        if cursor is None:
            break
        if extra < 10:  # appended between pages: must show up on a later page, once
            append(db, alice, conv, f"b{extra}")
            extra += 1
    assert extra >= 5
    assert seen == [f"a{i}" for i in range(25)] + [f"b{i}" for i in range(extra)]


@pytest.mark.slow
def test_concurrent_appends_from_several_processes_keep_one_total_order(
    tmp_path: Path, alice: TenantContext
) -> None:
    from coditect.store import open_store

    url = f"sqlite://{tmp_path / 'shared.db'}?synchronous=NORMAL"
    db = open_store(url)
    conv = make_conversation(db, alice, make_session(db, alice))
    writers, per_writer = 4, 40
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(writers) as pool:
        results = pool.starmap(
            workers.append_many,
            [(url, alice.tenant_id, alice.user_id, conv, w, per_writer) for w in range(writers)],
        )
    listed = all_messages(db, alice, conv, limit=37)
    # No lost message, none duplicated.
    assert sorted(m.content for m in listed) == sorted(
        f"w{w}-{i}" for w in range(writers) for i in range(per_writer)
    )
    # One total order: seq strictly increasing along the listing, and equal to what each append answered.
    seqs = [m.seq for m in listed]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    assert sorted(s for r in results for s in r) == seqs
    # Each writer's own messages appear in the order it wrote them.
    for w in range(writers):
        mine = [m.content for m in listed if m.content.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(per_writer)]
    assert conversations.get(db, alice, conv).message_count == writers * per_writer
    db.close()
