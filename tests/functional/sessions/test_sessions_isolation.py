"""Owner-only visibility: a user of the same tenant and a user of another tenant replay every
request of the owner against the owner's objects and get exactly what a missing object gets."""

from __future__ import annotations

from typing import Any

import pytest

from coditect import registry
from tests.helpers import check_envelope


@pytest.fixture
def world(accounts: Any, api: Any) -> dict[str, Any]:
    alice = accounts.register()
    sid = check_envelope(
        api.sessions.post("/api/v5/sessions", json={"name": "mine"}, headers=alice.headers), 201
    )["id"]
    cid = check_envelope(
        api.conversations.post(
            f"/api/v5/sessions/{sid}/conversations", json={"title": "c"}, headers=alice.headers
        ),
        201,
    )["id"]
    api.messages.post(
        f"/api/v5/conversations/{cid}/messages", json={"role": "user", "content": "hi"}, headers=alice.headers
    )
    fork = check_envelope(
        api.sessions.post(f"/api/v5/sessions/{sid}/fork", json={}, headers=alice.headers), 201
    )
    api.settings.put("/api/v5/settings/theme", json={"value": "dark"}, headers=alice.headers)
    return {"alice": alice, "sid": sid, "cid": cid, "fork": fork["id"]}


def _state(api: Any, w: dict[str, Any]) -> Any:
    a, sid, cid = w["alice"], w["sid"], w["cid"]
    return (
        api.sessions.get(f"/api/v5/sessions/{sid}", headers=a.headers).get_json(),
        api.sessions.get(f"/api/v5/sessions/{sid}/related", headers=a.headers).get_json()["data"],
        api.sessions.get("/api/v5/sessions", headers=a.headers).get_json()["data"],
        api.conversations.get(f"/api/v5/conversations/{cid}", headers=a.headers).get_json(),
        api.conversations.get(f"/api/v5/sessions/{sid}/conversations", headers=a.headers).get_json()["data"],
        api.messages.get(f"/api/v5/conversations/{cid}/messages", headers=a.headers).get_json()["data"],
        api.settings.get("/api/v5/settings", headers=a.headers).get_json()["data"],
    )


# (route name, client, method, path template, body) — every route of the four functions.
REQUESTS = [
    ("sessions.get", "sessions", "get", "/api/v5/sessions/{sid}", None),
    ("sessions.update", "sessions", "patch", "/api/v5/sessions/{sid}", {"name": "pwned"}),
    ("sessions.delete", "sessions", "delete", "/api/v5/sessions/{sid}", None),
    ("sessions.fork", "sessions", "post", "/api/v5/sessions/{sid}/fork", {}),
    ("sessions.related", "sessions", "get", "/api/v5/sessions/{fork}/related", None),
    ("conversations.list", "conversations", "get", "/api/v5/sessions/{sid}/conversations", None),
    ("conversations.create", "conversations", "post", "/api/v5/sessions/{sid}/conversations", {"title": "x"}),
    ("conversations.get", "conversations", "get", "/api/v5/conversations/{cid}", None),
    ("conversations.update", "conversations", "patch", "/api/v5/conversations/{cid}", {"title": "pwned"}),
    ("conversations.delete", "conversations", "delete", "/api/v5/conversations/{cid}", None),
    ("messages.list", "messages", "get", "/api/v5/conversations/{cid}/messages", None),
    (
        "messages.append",
        "messages",
        "post",
        "/api/v5/conversations/{cid}/messages",
        {"role": "user", "content": "x"},
    ),
    ("settings.get", "settings", "get", "/api/v5/settings/theme", None),
    ("settings.delete", "settings", "delete", "/api/v5/settings/theme", None),
]
# Routes with no owner's object in the path: the intruder only ever sees its own data.
OWN_DATA_ROUTES = {"sessions.list", "sessions.create", "settings.list", "settings.put"}


def test_the_replay_table_covers_every_route() -> None:
    names = {
        r.name
        for spec in registry.FUNCTIONS
        if spec.name in {"sessions", "conversations", "messages", "settings"}
        for r in spec.routes
    }
    assert names == {r[0] for r in REQUESTS} | OWN_DATA_ROUTES


@pytest.mark.parametrize("intruder", ["same_tenant", "other_tenant"])
def test_every_route_answers_404_to_others_and_changes_nothing(
    accounts: Any, api: Any, world: dict[str, Any], intruder: str
) -> None:
    alice = world["alice"]
    other = accounts.invite(alice, role="admin") if intruder == "same_tenant" else accounts.register()
    before = _state(api, world)
    for name, client, method, template, body in REQUESTS:
        path = template.format(**world)
        r = getattr(getattr(api, client), method)(path, json=body, headers=other.headers)
        assert r.status_code == 404, (name, r.get_data(as_text=True)[:300])
        check_envelope(r, 404, "not_found")
        # The owner still gets through (the 404 is not a broken route).
        if method == "get":
            check_envelope(getattr(getattr(api, client), method)(path, headers=alice.headers), 200)
    # Routes on the caller's own data show nothing of the owner's and change nothing of it.
    assert (
        check_envelope(api.sessions.get("/api/v5/sessions?archived=all", headers=other.headers), 200)["items"]
        == []
    )
    assert check_envelope(api.settings.get("/api/v5/settings", headers=other.headers), 200) == {}
    check_envelope(
        api.settings.put("/api/v5/settings/theme", json={"value": "light"}, headers=other.headers), 200
    )
    check_envelope(api.sessions.post("/api/v5/sessions", json={"name": "theirs"}, headers=other.headers), 201)
    assert _state(api, world) == before
