"""Issue 15 item 17: `Idempotency-Key` on every create/append (sessions, conversations, messages):
a repeat answers what the first made, a key reused with another body is 422, a malformed key is
422 validation_failed (as on workspace allocation), and concurrent repeats serialise (one object)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.helpers import check_envelope, run_threads


def post(client: Any, path: str, body: dict[str, Any], who: Any, key: str | None) -> Any:
    headers = dict(who.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=headers)


def targets(api: Any, alice: Any) -> list[tuple[Any, str, dict[str, Any], str]]:
    sid = check_envelope(post(api.sessions, "/api/v5/sessions", {"name": "s"}, alice, None), 201)["id"]
    cid = check_envelope(
        post(api.conversations, f"/api/v5/sessions/{sid}/conversations", {"title": "t"}, alice, None), 201
    )["id"]
    return [
        (api.sessions, "/api/v5/sessions", {"name": "retry me"}, "/api/v5/sessions?limit=200"),
        (api.conversations, f"/api/v5/sessions/{sid}/conversations", {"title": "c"},
         f"/api/v5/sessions/{sid}/conversations?limit=200"),
        (api.messages, f"/api/v5/conversations/{cid}/messages", {"role": "user", "content": "hi"},
         f"/api/v5/conversations/{cid}/messages?limit=200"),
    ]  # fmt: skip


def count(client: Any, path: str, who: Any) -> int:
    return len(check_envelope(client.get(path, headers=who.headers), 200)["items"])


def test_a_repeat_with_the_same_key_answers_the_same_object(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    for client, path, body, listing in targets(api, alice):
        before = count(client, listing, alice)
        key = str(uuid.uuid4())
        first = check_envelope(post(client, path, body, alice, key), 201)
        again = check_envelope(post(client, path, body, alice, key), 201)
        assert again == first, path
        assert count(client, listing, alice) == before + 1, path
        # Another body under the same key: 422, nothing written.
        error = check_envelope(
            post(client, path, {**body, **_other(body)}, alice, key), 422, "idempotency_key_reused"
        )
        assert error["details"] == [{"loc": ["header", "Idempotency-Key"], "type": "idempotency_key_reused"}]
        # Without a key, or with another key: a new object each time.
        assert check_envelope(post(client, path, body, alice, None), 201)["id"] != first["id"]
        assert check_envelope(post(client, path, body, alice, str(uuid.uuid4())), 201)["id"] != first["id"]
        assert count(client, listing, alice) == before + 3, path


def _other(body: dict[str, Any]) -> dict[str, Any]:
    field = next(iter(body.keys() - {"role"}))
    return {field: body[field] + " (changed)"}


def test_keys_are_scoped_per_user(accounts: Any, api: Any) -> None:
    alice, bob = accounts.register(), accounts.register()
    key = "shared-key-0001"
    a = check_envelope(post(api.sessions, "/api/v5/sessions", {"name": "x"}, alice, key), 201)
    b = check_envelope(post(api.sessions, "/api/v5/sessions", {"name": "x"}, bob, key), 201)
    assert a["id"] != b["id"] and b["owner_id"] != a["owner_id"]


@pytest.mark.parametrize("bad", ["", " ", "a" * 201, "caf\u00e9", "two words", "tab\there"])
def test_malformed_keys_are_422(accounts: Any, api: Any, bad: str) -> None:
    alice = accounts.register()
    headers = {**alice.headers, "Idempotency-Key": bad}
    try:
        response = api.sessions.post("/api/v5/sessions", json={"name": "x"}, headers=headers)
    except ValueError:  # the test client itself refuses some header values
        return
    error = check_envelope(response, 422, "validation_failed")
    assert error["details"] == [{"loc": ["header", "Idempotency-Key"], "type": "string_pattern_mismatch"}]


def test_concurrent_repeats_make_one_object(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    sid = check_envelope(post(api.sessions, "/api/v5/sessions", {"name": "s"}, alice, None), 201)["id"]
    cid = check_envelope(
        post(api.conversations, f"/api/v5/sessions/{sid}/conversations", {"title": "t"}, alice, None), 201
    )["id"]
    results: list[dict[str, Any]] = []

    def send() -> None:
        response = post(api.messages, f"/api/v5/conversations/{cid}/messages",
                        {"role": "user", "content": "once"}, alice, "concurrent-key-1")  # fmt: skip
        results.append(check_envelope(response, 201))

    run_threads([send] * 8)
    assert len(results) == 8 and len({r["id"] for r in results}) == 1
    assert count(api.messages, f"/api/v5/conversations/{cid}/messages", alice) == 1
