"""The front door's retries (issue 15, items 17 and 18), run for real: the rendered Caddy config in
front of fake functions that close a connection before answering (as a function closing a
kept-alive connection, or killed mid-request, does) or do not listen at all (a process
restarting). Idempotent requests are answered by the second try; a POST is never replayed unless
it carries `Idempotency-Key` on a route that honours it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from coditect.deploy.routes import path_regex
from coditect.devstack import frontdoor
from coditect.devstack.plan import free_port
from coditect.registry.spec import FunctionSpec, Route
from tests.unit.devstack.caddy import FakeFunction, reply_json, running_caddy

SPECS = [
    FunctionSpec("items", routes=(
        Route("items.list", "GET", "/api/v5/items"),
        Route("items.create", "POST", "/api/v5/items", idempotent=True),
        Route("items.put", "PUT", "/api/v5/items/<uuid:id>"),
        Route("items.delete", "DELETE", "/api/v5/items/<uuid:id>"),
        Route("items.allocate", "POST", "/api/v5/items/<uuid:id>/allocate", request_headers=("Idempotency-Key",)),
        Route("items.touch", "POST", "/api/v5/items/<uuid:id>/touch"),
    )),
    FunctionSpec("pair", routes=(Route("pair.get", "GET", "/api/v5/pair"), Route("pair.post", "POST", "/api/v5/pair"))),
    FunctionSpec("relay", kind="asgi"),
]  # fmt: skip


class Dropping(FakeFunction):
    """A fake function that closes the connection without a byte of answer, once per request id,
    when the request asks for it: `X-Drop: fresh` (the first request of a new connection, which
    Go's own transport never repeats) or `X-Drop: reused` (a request on a kept-alive connection
    that already carried one). It records every request it read, and answers the others 200."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.dropped: set[str] = set()
        super().__init__()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        rid = request.headers.get("X-Request-Id", "")
        self.seen.append({"method": request.command, "path": request.path, "rid": rid, "body": body})
        mode, served = request.headers.get("X-Drop"), getattr(request, "served", 0)  # per connection
        if rid not in self.dropped and (mode == "fresh" or (mode == "reused" and served)):
            self.dropped.add(rid)
            request.close_connection = True  # closed with nothing written
            return
        request.served = served + 1  # type: ignore[attr-defined]
        reply_json(request, {"ok": True})

    def times(self, rid: str) -> int:
        """How many times the request with this id reached the function."""
        return sum(1 for entry in self.seen if entry["rid"] == rid)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Dropping, Dropping]]:
    work = tmp_path_factory.mktemp("frontdoor-retry")
    items, pair = Dropping(), Dropping()
    dead = f"http://127.0.0.1:{free_port()}"  # a process that is down: nobody listens
    upstreams = {"items": items.url, "pair": [dead, pair.url], "relay": items.url}
    port = free_port()
    door = frontdoor.FrontDoor(f"127.0.0.1:{port}", work)
    try:
        with running_caddy(work, frontdoor.render(SPECS, upstreams, door), port) as url:
            yield url, items, pair
    finally:
        for fake in (items, pair):
            fake.stop()


def send(url: str, method: str, path: str, drop: str | None, **headers: str) -> tuple[httpx.Response, str]:
    rid = f"retry-{uuid.uuid4().hex}"
    sent = {"X-Request-Id": rid, **({"X-Drop": drop} if drop else {}), **headers}
    body = json.dumps({"n": rid}).encode() if method in ("POST", "PUT") else None
    with httpx.Client(base_url=url, timeout=10) as http:
        return http.request(method, path, content=body, headers=sent), rid


def warm_up(url: str, path: str) -> None:
    """A request through the same proxy handler (one connection pool per function), so the next
    one travels on a kept-alive connection."""
    with httpx.Client(base_url=url) as http:
        assert (
            http.get("/workspaces/w/" if path.startswith("/workspaces") else "/api/v5/items").status_code
            == 200
        )


ITEM = f"/api/v5/items/{uuid.uuid4()}"


@pytest.mark.parametrize("drop", ["fresh", "reused"])
@pytest.mark.parametrize("method,path", [("GET", "/api/v5/items"), ("HEAD", "/api/v5/items"), ("PUT", ITEM),
                                         ("DELETE", ITEM), ("GET", "/workspaces/w/index.html")])  # fmt: skip
def test_an_idempotent_request_cut_before_its_answer_is_answered_by_a_second_try(
    door: tuple[str, Dropping, Dropping], method: str, path: str, drop: str
) -> None:
    url, items, _ = door
    if drop == "reused":  # a kept-alive connection to the function first, then the request on it
        warm_up(url, path)
    response, rid = send(url, method, path, drop)
    assert response.status_code == 200, response.text
    assert items.times(rid) == 2 and rid in items.dropped
    bodies = {entry["body"] for entry in items.seen if entry["rid"] == rid}
    assert len(bodies) == 1  # the buffered body is replayed whole


@pytest.mark.parametrize("drop", ["fresh", "reused"])
@pytest.mark.parametrize(
    "path,key",
    [
        ("/api/v5/items", None),  # a create without a key: its outcome is unknown, never replayed
        (f"{ITEM}/touch", "k-1"),  # a key on a route that does not honour keys is not a promise
        ("/workspaces/w/api", "k-2"),  # the relay's workspaces are arbitrary programs
    ],
)
def test_a_post_cut_before_its_answer_is_not_replayed(
    door: tuple[str, Dropping, Dropping], path: str, key: str | None, drop: str
) -> None:
    url, items, _ = door
    if drop == "reused":
        warm_up(url, path)
    response, rid = send(url, "POST", path, drop, **({"Idempotency-Key": key} if key else {}))
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert items.times(rid) == 1


@pytest.mark.parametrize("path", ["/api/v5/items", f"{ITEM}/allocate"])
def test_a_post_with_an_honoured_idempotency_key_is_replayed(
    door: tuple[str, Dropping, Dropping], path: str
) -> None:
    url, items, _ = door
    response, rid = send(url, "POST", path, "fresh", **{"Idempotency-Key": "create-1"})
    assert response.status_code == 200, response.text
    assert items.times(rid) == 2
    assert len({entry["body"] for entry in items.seen if entry["rid"] == rid}) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_process_that_is_down_is_skipped_for_every_method(
    door: tuple[str, Dropping, Dropping], method: str
) -> None:
    """Two processes, one not listening: a failed connect sent nothing, so even a POST without a
    key goes to the other (and the failed one is left out for a while, passive health)."""
    url, _, pair = door
    for _ in range(20):
        response, rid = send(url, method, "/api/v5/pair", None)
        assert response.status_code == 200, response.text
        assert pair.times(rid) == 1


def test_the_retry_rules_in_the_rendered_config() -> None:
    config = frontdoor.render(SPECS, {"items": "http://127.0.0.1:1", "pair": ["http://127.0.0.1:2", "http://127.0.0.1:3"],
                                      "relay": "http://127.0.0.1:4"}, frontdoor.FrontDoor("127.0.0.1:5", Path("x")))  # fmt: skip
    server = config["apps"]["http"]["servers"]["frontdoor"]
    items = server["named_routes"]["items"]["handle"][1]
    assert items["load_balancing"]["retries"] == 1
    keyed = [path_regex("/api/v5/items"), path_regex("/api/v5/items/<uuid:id>/allocate")]
    assert items["load_balancing"]["retry_match"] == [
        {"method": ["DELETE", "GET", "HEAD", "OPTIONS", "PUT"]},
        {"method": ["POST"], "header": {"Idempotency-Key": ["*"]},
         "vars_regexp": {"{http.request.uri.path}": {"pattern": f"^(?:{'|'.join(sorted(keyed))})$"}}},
    ]  # fmt: skip
    assert "health_checks" not in items  # one process: one dropped connection must not bench it
    pair = server["named_routes"]["pair"]["handle"][1]
    assert [u["dial"] for u in pair["upstreams"]] == ["127.0.0.1:2", "127.0.0.1:3"]
    assert pair["health_checks"]["passive"]["max_fails"] == 1
    assert pair["load_balancing"]["selection_policy"] == {"policy": "least_conn"}
    # Below the functions' keep-alive, so the proxy closes an idle connection first.
    assert items["transport"]["keep_alive"]["idle_timeout"] == "1s"


def test_the_proxy_closes_idle_connections_before_the_functions_do() -> None:
    """functions-framework leaves gunicorn's keep-alive at its default (it sets no `keepalive`);
    the relay's uvicorn keeps its default too. Both must stay above the proxy's idle timeout."""
    import gunicorn.config
    import uvicorn
    from functions_framework._http.gunicorn import GunicornApplication

    from coditect.config import Settings
    from coditect.relay.server import options

    config = frontdoor.example([*SPECS[:1], SPECS[2]])
    routes = config["apps"]["http"]["servers"]["frontdoor"]
    idle = {h["transport"]["keep_alive"]["idle_timeout"] for _, h in _proxies(routes)}
    assert idle == {"1s"}
    app = GunicornApplication(object(), "127.0.0.1", 0, False)
    assert "keepalive" not in app.options and app.cfg.keepalive == gunicorn.config.Config().keepalive == 2
    relay = uvicorn.Config(app=None, **{k: v for k, v in options(Settings()).items() if k != "loop"})
    assert relay.timeout_keep_alive == 5


def _proxies(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("handler") == "reverse_proxy":
            yield "proxy", node
        for value in node.values():
            yield from _proxies(value)
    elif isinstance(node, list):
        for value in node:
            yield from _proxies(value)


def test_a_streamed_upload_cut_before_its_answer_is_never_replayed_in_part(
    door: tuple[str, Dropping, Dropping],
) -> None:
    """Bodies above the buffer limit are streamed: once read they cannot be sent again, and a
    retry must never deliver a partial body as if it were whole."""
    url, items, _ = door
    body = b"x" * (frontdoor.BUFFER_BYTES + 1024 * 1024)
    rid = f"retry-{uuid.uuid4().hex}"
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.put(ITEM, content=body, headers={"X-Request-Id": rid, "X-Drop": "fresh"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    arrived = [entry["body"] for entry in items.seen if entry["rid"] == rid]
    assert arrived[0] == body  # the first try was whole (the fake read it all, then dropped)
    assert all(len(later) < len(body) for later in arrived[1:])  # nothing complete a second time
