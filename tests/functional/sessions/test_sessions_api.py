"""Round trips and bad input through the in-process functions (sessions, conversations, messages, settings)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.helpers import check_envelope

SESSION_FIELDS = {
    "id",
    "name",
    "description",
    "metadata",
    "parent_id",
    "archived",
    "owner_id",
    "created_at",
    "updated_at",
}


def _session(api: Any, who: Any, **body: Any) -> dict[str, Any]:
    return check_envelope(
        api.sessions.post("/api/v5/sessions", json={"name": "s", **body}, headers=who.headers), 201
    )


def _conversation(api: Any, who: Any, sid: str, title: str = "c") -> dict[str, Any]:
    r = api.conversations.post(
        f"/api/v5/sessions/{sid}/conversations", json={"title": title}, headers=who.headers
    )
    return check_envelope(r, 201)


def test_session_crud_round_trip(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    created = _session(api, alice, name="Project", description="d", metadata={"lang": "py", "n": [1, 2]})
    assert set(created) == SESSION_FIELDS
    assert (
        created["owner_id"] == alice.user_id and created["parent_id"] is None and created["archived"] is False
    )
    assert created["created_at"].endswith("Z") or created["created_at"].endswith("+00:00")

    r = api.sessions.get(f"/api/v5/sessions/{created['id']}", headers=alice.headers)
    assert check_envelope(r, 200) == created
    etag = r.headers["ETag"]

    r = api.sessions.patch(
        f"/api/v5/sessions/{created['id']}",
        json={"name": "Renamed", "archived": True},
        headers={**alice.headers, "If-Match": etag},
    )
    patched = check_envelope(r, 200)
    assert patched["name"] == "Renamed" and patched["archived"] is True and r.headers["ETag"] != etag
    assert patched["updated_at"] > created["updated_at"]

    listed = check_envelope(api.sessions.get("/api/v5/sessions", headers=alice.headers), 200)
    assert listed == {"items": [], "next_cursor": None}  # archived: hidden by default
    listed = check_envelope(api.sessions.get("/api/v5/sessions?archived=true", headers=alice.headers), 200)
    assert [s["id"] for s in listed["items"]] == [created["id"]]

    check_envelope(api.sessions.delete(f"/api/v5/sessions/{created['id']}", headers=alice.headers), 204)
    check_envelope(
        api.sessions.get(f"/api/v5/sessions/{created['id']}", headers=alice.headers), 404, "not_found"
    )
    listed = check_envelope(api.sessions.get("/api/v5/sessions?archived=all", headers=alice.headers), 200)
    assert listed["items"] == []
    check_envelope(api.sessions.delete(f"/api/v5/sessions/{created['id']}", headers=alice.headers), 404)


def test_if_match_conflict_writes_nothing(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    sid = _session(api, alice)["id"]
    stale = api.sessions.get(f"/api/v5/sessions/{sid}", headers=alice.headers).headers["ETag"]
    check_envelope(
        api.sessions.patch(f"/api/v5/sessions/{sid}", json={"name": "v2"}, headers=alice.headers), 200
    )
    current = api.sessions.get(f"/api/v5/sessions/{sid}", headers=alice.headers)
    r = api.sessions.patch(
        f"/api/v5/sessions/{sid}",
        json={"name": "lost update", "metadata": {"x": 1}},
        headers={**alice.headers, "If-Match": stale},
    )
    check_envelope(r, 412, "precondition_failed")
    after = api.sessions.get(f"/api/v5/sessions/{sid}", headers=alice.headers)
    assert check_envelope(after, 200) == check_envelope(current, 200)
    assert after.headers["ETag"] == current.headers["ETag"]


def test_conversations_and_messages_round_trip(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    sid = _session(api, alice)["id"]
    conv = _conversation(api, alice, sid, "first")
    assert conv["session_id"] == sid and conv["message_count"] == 0 and conv["agent"] is None
    base = f"/api/v5/conversations/{conv['id']}"
    r = api.conversations.patch(base, json={"title": "t2", "agent": "coder"}, headers=alice.headers)
    assert check_envelope(r, 200)["agent"] == "coder"

    sent = []
    for i, role in enumerate(["system", "user", "assistant", "tool"]):
        body = {"role": role, "content": f"m{i}", "metadata": {"i": i}}
        sent.append(
            check_envelope(api.messages.post(f"{base}/messages", json=body, headers=alice.headers), 201)
        )
    assert set(sent[0]) == {"id", "conversation_id", "seq", "role", "content", "metadata", "created_at"}
    page1 = check_envelope(api.messages.get(f"{base}/messages?limit=3", headers=alice.headers), 200)
    page2 = check_envelope(
        api.messages.get(f"{base}/messages?limit=3&cursor={page1['next_cursor']}", headers=alice.headers), 200
    )
    assert page1["items"] + page2["items"] == sent and page2["next_cursor"] is None
    assert check_envelope(api.conversations.get(base, headers=alice.headers), 200)["message_count"] == 4

    listed = check_envelope(
        api.conversations.get(f"/api/v5/sessions/{sid}/conversations", headers=alice.headers), 200
    )
    assert [c["id"] for c in listed["items"]] == [conv["id"]] and listed["items"][0]["message_count"] == 4

    check_envelope(api.conversations.delete(base, headers=alice.headers), 204)
    check_envelope(api.conversations.get(base, headers=alice.headers), 404)
    check_envelope(api.messages.get(f"{base}/messages", headers=alice.headers), 404)


def test_one_mib_of_content_fits_and_one_byte_more_is_413(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    conv = _conversation(api, alice, _session(api, alice)["id"])
    url = f"/api/v5/conversations/{conv['id']}/messages"
    # 1 MiB of control characters: 6 MiB once JSON-escaped, still within the route's body limit.
    body = json.dumps({"role": "user", "content": "\x07" * (1024 * 1024)})
    r = api.messages.post(url, data=body, content_type="application/json", headers=alice.headers)
    assert check_envelope(r, 201)["content"] == "\x07" * (1024 * 1024)
    r = api.messages.post(
        url, json={"role": "user", "content": "é" * (512 * 1024) + "x"}, headers=alice.headers
    )
    check_envelope(r, 413, "content_too_large")
    listed = check_envelope(api.messages.get(url, headers=alice.headers), 200)
    assert len(listed["items"]) == 1


def test_settings_round_trip(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    assert check_envelope(api.settings.get("/api/v5/settings", headers=alice.headers), 200) == {}
    r = api.settings.put("/api/v5/settings/editor.font-size", json={"value": 14}, headers=alice.headers)
    assert check_envelope(r, 200)["value"] == 14
    r = api.settings.put(
        "/api/v5/settings/ui", json={"value": {"panes": [1, 2], "dark": None}}, headers=alice.headers
    )
    got = check_envelope(api.settings.get("/api/v5/settings/ui", headers=alice.headers), 200)
    assert got["key"] == "ui" and got["value"] == {"panes": [1, 2], "dark": None} and "updated_at" in got
    assert check_envelope(api.settings.get("/api/v5/settings", headers=alice.headers), 200) == {
        "editor.font-size": 14,
        "ui": {"panes": [1, 2], "dark": None},
    }
    check_envelope(api.settings.delete("/api/v5/settings/ui", headers=alice.headers), 204)
    check_envelope(api.settings.get("/api/v5/settings/ui", headers=alice.headers), 404)
    r = api.settings.put("/api/v5/settings/big", json={"value": "x" * (64 * 1024)}, headers=alice.headers)
    check_envelope(r, 413, "content_too_large")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("get", "/api/v5/sessions/not-a-uuid", None, 404, "not_found"),
        ("patch", "/api/v5/sessions/123", {"name": "x"}, 404, "not_found"),
        ("get", f"/api/v5/sessions/{uuid.uuid4()}", None, 404, "not_found"),
        ("post", "/api/v5/sessions", {"name": ""}, 422, "validation_failed"),
        ("post", "/api/v5/sessions", {"name": "x" * 201}, 422, "validation_failed"),
        ("post", "/api/v5/sessions", {"name": "x", "owner_id": "me"}, 422, "validation_failed"),
        (
            "post",
            "/api/v5/sessions",
            {"name": "x", "metadata": {"k": "v" * 16_400}},
            422,
            "validation_failed",
        ),
        ("post", "/api/v5/sessions", {"name": "x", "metadata": "text"}, 422, "validation_failed"),
        ("get", "/api/v5/sessions?limit=0", None, 422, "validation_failed"),
        ("get", "/api/v5/sessions?archived=maybe", None, 422, "validation_failed"),
        ("get", "/api/v5/sessions?cursor=garbage", None, 400, "invalid_cursor"),
        ("get", "/api/v5/conversations/nope/messages", None, 404, "not_found"),
        ("get", "/api/v5/settings/Bad%20Key", None, 422, "validation_failed"),
        ("put", "/api/v5/settings/" + "k" * 129, {"value": 1}, 422, "validation_failed"),
        ("put", "/api/v5/settings/ok", {}, 422, "validation_failed"),
        ("put", "/api/v5/settings/ok", {"value": 1, "extra": 2}, 422, "validation_failed"),
    ],
)
def test_bad_input(
    accounts: Any, api: Any, method: str, path: str, body: Any, status: int, code: str
) -> None:
    alice = accounts.register()
    client = api.settings if "/settings" in path else api.messages if "/messages" in path else api.sessions
    r = getattr(client, method)(path, json=body, headers=alice.headers)
    check_envelope(r, status, code)


def test_bad_input_on_conversations_and_messages_writes_nothing(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    sid = _session(api, alice)["id"]
    url = f"/api/v5/sessions/{sid}/conversations"
    for body in ({"title": ""}, {"title": "x" * 201}, {"title": "t", "session_id": sid}, {}):
        check_envelope(
            api.conversations.post(url, json=body, headers=alice.headers), 422, "validation_failed"
        )
    assert check_envelope(api.conversations.get(url, headers=alice.headers), 200)["items"] == []
    conv = _conversation(api, alice, sid)
    murl = f"/api/v5/conversations/{conv['id']}/messages"
    for body in (
        {"role": "root", "content": "x"},
        {"role": "user"},
        {"role": "user", "content": "x", "seq": 5},
        {"role": "user", "content": 5},
    ):
        check_envelope(api.messages.post(murl, json=body, headers=alice.headers), 422, "validation_failed")
    assert check_envelope(api.messages.get(murl, headers=alice.headers), 200)["items"] == []
    assert (
        check_envelope(
            api.conversations.get(f"/api/v5/conversations/{conv['id']}", headers=alice.headers), 200
        )["message_count"]
        == 0
    )


def test_cursor_from_another_listing_is_400(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    for i in range(3):
        _session(api, alice, name=f"s{i}")
    cursor = check_envelope(api.sessions.get("/api/v5/sessions?limit=1", headers=alice.headers), 200)[
        "next_cursor"
    ]
    r = api.sessions.get(f"/api/v5/sessions?limit=1&archived=all&cursor={cursor}", headers=alice.headers)
    check_envelope(r, 400, "invalid_cursor")
    bob = accounts.invite(alice)
    for i in range(2):
        _session(api, bob, name=f"b{i}")
    r = api.sessions.get(f"/api/v5/sessions?limit=1&cursor={cursor}", headers=bob.headers)
    check_envelope(r, 400, "invalid_cursor")
    tampered = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]  # a byte of the MAC
    check_envelope(
        api.sessions.get(f"/api/v5/sessions?cursor={tampered}", headers=alice.headers), 400, "invalid_cursor"
    )


def test_session_listing_is_complete_across_pages(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    made = [_session(api, alice, name=f"s{i}")["id"] for i in range(23)]
    seen, cursor = [], None
    while True:
        url = "/api/v5/sessions?limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = check_envelope(api.sessions.get(url, headers=alice.headers), 200)
        seen.extend(s["id"] for s in page["items"])
        if len(seen) == 10:  # created while paging: newer than the cursor, so not on later pages
            _session(api, alice, name="late")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


def test_unauthenticated_is_401(api: Any) -> None:
    r = api.sessions.get("/api/v5/sessions")
    check_envelope(r, 401, "token_missing")


def test_deletes_retried_after_commit_unknown_result_still_answer_204(accounts: Any) -> None:
    """The commit applied, then reported 1021: the retry finds nothing to delete — that is success."""
    alice = accounts.register()
    h = alice.headers
    sid = check_envelope(
        accounts.client("sessions").post("/api/v5/sessions", json={"name": "s"}, headers=h), 201
    )["id"]
    conversations = accounts.client("conversations")
    cid = check_envelope(
        conversations.post(f"/api/v5/sessions/{sid}/conversations", json={"title": "t"}, headers=h), 201
    )["id"]
    accounts.app("conversations").db.faults.commit_unknown_after = 1
    check_envelope(conversations.delete(f"/api/v5/conversations/{cid}", headers=h), 204)
    assert accounts.app("conversations").db.faults.commit_unknown_after == 0  # the fault fired
    check_envelope(conversations.get(f"/api/v5/conversations/{cid}", headers=h), 404, "not_found")

    settings = accounts.client("settings")
    check_envelope(settings.put("/api/v5/settings/editor.theme", json={"value": "dark"}, headers=h), 200)
    accounts.app("settings").db.faults.commit_unknown_after = 1
    check_envelope(settings.delete("/api/v5/settings/editor.theme", headers=h), 204)
    assert accounts.app("settings").db.faults.commit_unknown_after == 0
    check_envelope(settings.get("/api/v5/settings/editor.theme", headers=h), 404, "not_found")
    check_envelope(settings.delete("/api/v5/settings/editor.theme", headers=h), 404, "not_found")


def test_an_empty_cursor_is_the_first_page_everywhere(accounts: Any, api: Any) -> None:
    """Issue 15 item 13: `?cursor=` (empty) is the first page, as no cursor (it was 400)."""
    alice = accounts.register()
    sid = _session(api, alice)["id"]
    cid = _conversation(api, alice, sid)["id"]
    for path, client in (
        ("/api/v5/sessions", api.sessions),
        (f"/api/v5/sessions/{sid}/conversations", api.conversations),
        (f"/api/v5/conversations/{cid}/messages", api.messages),
    ):
        first = check_envelope(client.get(f"{path}?limit=5", headers=alice.headers), 200)
        empty = check_envelope(client.get(f"{path}?limit=5&cursor=", headers=alice.headers), 200)
        assert empty == first and (first["items"] or "messages" in path), path
