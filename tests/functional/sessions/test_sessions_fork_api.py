"""Fork and related through the functions: copies, independence, two levels of forks."""

from __future__ import annotations

from typing import Any

from tests.helpers import check_envelope


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for s in items]


def _fork(api: Any, who: Any, sid: str, **body: Any) -> dict[str, Any]:
    return check_envelope(
        api.sessions.post(f"/api/v5/sessions/{sid}/fork", json=body, headers=who.headers), 201
    )


def _related(api: Any, who: Any, sid: str, query: str = "") -> dict[str, Any]:
    return check_envelope(
        api.sessions.get(f"/api/v5/sessions/{sid}/related{query}", headers=who.headers), 200
    )


def _messages(api: Any, who: Any, sid: str) -> list[list[tuple[int, str]]]:
    convs = check_envelope(
        api.conversations.get(f"/api/v5/sessions/{sid}/conversations", headers=who.headers), 200
    )
    out = []
    for c in convs["items"]:
        page = check_envelope(
            api.messages.get(f"/api/v5/conversations/{c['id']}/messages", headers=who.headers), 200
        )
        out.append([(m["seq"], m["content"]) for m in page["items"]])
    return out


def test_fork_copies_and_is_independent_both_ways(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    root = check_envelope(
        api.sessions.post(
            "/api/v5/sessions", json={"name": "root", "metadata": {"m": 1}}, headers=alice.headers
        ),
        201,
    )
    conv = check_envelope(
        api.conversations.post(
            f"/api/v5/sessions/{root['id']}/conversations", json={"title": "t"}, headers=alice.headers
        ),
        201,
    )
    for i in range(5):
        api.messages.post(
            f"/api/v5/conversations/{conv['id']}/messages",
            json={"role": "user", "content": f"m{i}"},
            headers=alice.headers,
        )
    child = _fork(api, alice, root["id"], name="child")
    assert child["parent_id"] == root["id"] and child["name"] == "child" and child["metadata"] == {"m": 1}
    assert _messages(api, alice, child["id"]) == _messages(api, alice, root["id"])

    child_conv = check_envelope(
        api.conversations.get(f"/api/v5/sessions/{child['id']}/conversations", headers=alice.headers), 200
    )["items"][0]
    api.messages.post(
        f"/api/v5/conversations/{child_conv['id']}/messages",
        json={"role": "user", "content": "fork only"},
        headers=alice.headers,
    )
    api.messages.post(
        f"/api/v5/conversations/{conv['id']}/messages",
        json={"role": "user", "content": "root only"},
        headers=alice.headers,
    )
    api.sessions.patch(f"/api/v5/sessions/{child['id']}", json={"metadata": {"m": 2}}, headers=alice.headers)
    root_msgs, child_msgs = _messages(api, alice, root["id"]), _messages(api, alice, child["id"])
    assert [c for _, c in root_msgs[0]] == [f"m{i}" for i in range(5)] + ["root only"]
    assert [c for _, c in child_msgs[0]] == [f"m{i}" for i in range(5)] + ["fork only"]
    root_now = check_envelope(api.sessions.get(f"/api/v5/sessions/{root['id']}", headers=alice.headers), 200)
    assert root_now["metadata"] == {"m": 1}


def test_related_after_two_levels_of_forks(accounts: Any, api: Any) -> None:
    alice = accounts.register()
    root = check_envelope(
        api.sessions.post("/api/v5/sessions", json={"name": "root"}, headers=alice.headers), 201
    )["id"]
    a, b, c = (_fork(api, alice, root, name=n)["id"] for n in ("a", "b", "c"))
    a1, a2 = (_fork(api, alice, a, name=n)["id"] for n in ("a1", "a2"))

    r = _related(api, alice, root)
    assert r["parent"] is None and _ids(r["children"]) == [a, b, c] and r["siblings"] == []
    r = _related(api, alice, a)
    assert r["parent"]["id"] == root and _ids(r["children"]) == [a1, a2] and _ids(r["siblings"]) == [b, c]
    r = _related(api, alice, a2)
    assert r["parent"]["id"] == a and r["children"] == [] and _ids(r["siblings"]) == [a1]
    r = _related(api, alice, b)
    assert _ids(r["siblings"]) == [a, c] and r["children"] == []

    # Paged: each list on its own cursor.
    first = _related(api, alice, root, "?limit=2")
    assert _ids(first["children"]) == [a, b] and first["children_next_cursor"]
    rest = _related(api, alice, root, f"?limit=2&children_cursor={first['children_next_cursor']}")
    assert _ids(rest["children"]) == [c] and rest["children_next_cursor"] is None
    bad = api.sessions.get(
        f"/api/v5/sessions/{a}/related?children_cursor={first['children_next_cursor']}", headers=alice.headers
    )
    check_envelope(bad, 400, "invalid_cursor")

    # Deleting a middle level: its forks stay, with no parent and no siblings.
    check_envelope(api.sessions.delete(f"/api/v5/sessions/{a}", headers=alice.headers), 204)
    r = _related(api, alice, a1)
    assert r["parent"] is None and r["siblings"] == []
    assert _ids(_related(api, alice, root)["children"]) == [b, c]
