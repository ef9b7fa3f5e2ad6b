"""Issue 15 item 9: nothing stored derives a live refresh token, even with the pepper.

The attacker here holds a full dump of the store and the pepper file. They try every stored value
and every string inside a JSON value both as the old design's family nonce and as a "presented"
token of the new chain; none yields the live refresh token, while the client's own token does.
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
from collections.abc import Iterator
from typing import Any

from coditect.config import get_settings
from coditect.identity import tokens
from coditect.identity.accounts import pepper_of
from coditect.store import Database
from tests.helpers import check_envelope
from tests.plugins.identity import Accounts


def refresh(accounts: Accounts, token: str) -> dict[str, Any]:
    response = accounts.client("refresh").post("/api/v5/auth/refresh", json={"refresh_token": token})
    return dict(check_envelope(response, 200)["tokens"])


def strings_in(value: bytes) -> Iterator[str]:
    yield value.hex()
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return
    yield text
    try:
        doc = json.loads(text)
    except ValueError:
        return
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            yield item


def old_design(pepper: bytes, sid: str, nonce_hex: str, generation: int) -> str | None:
    """What the store + pepper derived before: token(g) from the family nonce."""
    try:
        nonce = bytes.fromhex(nonce_hex)
    except ValueError:
        return None
    family = hmac.new(pepper, b"coditect-refresh-family\x00" + nonce, "sha256").digest()
    mac = hmac.new(family, b"gen\x00" + sid.encode() + struct.pack(">Q", generation), "sha256").digest()
    return "crt_" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_store_dump_and_pepper_do_not_derive_the_live_refresh_token(
    accounts: Accounts, store: Database
) -> None:
    alice = accounts.register()
    first = alice.refresh_token
    live = refresh(accounts, refresh(accounts, first)["refresh_token"])["refresh_token"]
    pepper = pepper_of(get_settings())
    dump = store.transact(lambda tr: tr.get_range(b"", b"\xff"))
    candidates = {s for _, value in dump for s in strings_in(value)} | {key.hex() for key, _ in dump}
    assert live not in candidates and first not in candidates  # not stored in clear
    sid = alice.session_id
    for candidate in candidates:
        assert tokens.successor(pepper, session_id=sid, presented=candidate) != live
        for generation in range(4):
            assert old_design(pepper, sid, candidate, generation) != live
    # The chain itself: each successor follows from the token the client presented.
    second = tokens.successor(pepper, session_id=sid, presented=first)
    assert tokens.successor(pepper, session_id=sid, presented=second) == live


def test_grace_replay_returns_the_identical_successor(accounts: Accounts) -> None:
    alice = accounts.register()
    one = refresh(accounts, alice.refresh_token)["refresh_token"]
    assert refresh(accounts, alice.refresh_token)["refresh_token"] == one  # the same, in grace
    two = refresh(accounts, one)["refresh_token"]
    assert two != one and refresh(accounts, one)["refresh_token"] == two
