"""The front door (Caddy) on the real local stack: paths, internal endpoints, the client address,
slow clients and a 100 MiB streamed upload, over sockets. Its config, envelopes and request ids
are covered against fake functions in tests/unit/devstack/test_devstack_frontdoor.py."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import RunningStack, wait_for
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e


def raw(
    stack: RunningStack, method: str, path: str, body: bytes | None = None, **headers: str
) -> httpx.Response:
    """Send `path` byte for byte (httpx, like browsers, would remove dot segments first)."""
    conn = http.client.HTTPConnection(stack.url.removeprefix("http://"), timeout=30)
    try:
        conn.request(method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})
        answer = conn.getresponse()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())
    finally:
        conn.close()


def register(http: httpx.Client) -> dict[str, str]:
    body = {"email": f"door-{secrets.token_hex(4)}@example.test", "password": f"e2e-{secrets.token_hex(8)}-quartz",
            "name": "Front door"}  # fmt: skip
    data = check_envelope(http.post("/api/v5/auth/register", json=body), 201)
    return {"Authorization": f"Bearer {data['tokens']['access_token']}", "email": body["email"],
            "password": body["password"]}  # fmt: skip


@pytest.fixture(scope="module")
def user(stack: RunningStack) -> Iterator[tuple[dict[str, str], str]]:
    with stack.client() as http:
        account = register(http)
        auth = {"Authorization": account["Authorization"]}
        sid = check_envelope(http.post("/api/v5/sessions", json={"name": "front door"}, headers=auth), 201)[
            "id"
        ]
    yield account, str(sid)


def test_the_stack_reports_its_front_door(stack: RunningStack) -> None:
    door = stack.state()["frontdoor"]
    assert door["url"] == stack.url and door["pid"] and Path(f"/proc/{door['pid']}").exists()
    # The table is printed once the scheduler runs too, a moment after the front door answers.
    wait_for(lambda: "Ready in" in stack.output(), 30, "the stack's table")
    assert re.search(
        r"front door +" + re.escape(stack.url) + r" +caddy pid " + str(door["pid"]), stack.output()
    )
    config = json.loads(Path(door["config"]).read_text())
    assert config["admin"]["disabled"] is True
    assert Path(door["log"]) == stack.data_dir / "logs" / "frontdoor.log" and Path(door["log"]).exists()


@pytest.mark.parametrize(
    "rest",
    ["a/../b", "../../../../../metrics", "%2e%2e/x", "a/%2E%2E/b", "a%2f..%2fb", "a%2F..%2Fb", "x//y", "./a"],
)
def test_dot_segments_and_encoded_traversals_are_400_from_the_files_function(
    stack: RunningStack, user: tuple[dict[str, str], str], rest: str
) -> None:
    account, sid = user
    auth = account["Authorization"]
    for method, body in (("PUT", b"content"), ("GET", None), ("DELETE", None)):
        response = raw(stack, method, f"/api/v5/sessions/{sid}/files/{rest}", body, Authorization=auth)
        check_envelope(response, 400, "invalid_path")
    # nothing was written under any name the path could be cleaned to
    with stack.client() as http:
        listing = check_envelope(
            http.get(f"/api/v5/sessions/{sid}/files", headers={"Authorization": auth}), 200
        )
    assert listing["items"] == []


def _is_metrics(response: httpx.Response) -> bool:
    return "# HELP" in response.text or "# TYPE" in response.text


@pytest.mark.parametrize(
    "path",
    ["/metrics", "/healthz", "/workspaces/../metrics", "/workspaces/%2e%2e/metrics", "/api/v5/../metrics",
     "/api/v5/health/../../metrics", "/api/v5/%2e%2e/healthz", "/workspaces/../healthz"],
)  # fmt: skip
def test_the_functions_metrics_and_readiness_are_not_reachable(stack: RunningStack, path: str) -> None:
    response = raw(stack, "GET", path)
    assert response.status_code in (401, 404), (path, response.status_code, response.text)
    assert not _is_metrics(response) and response.text != "ok\n"


def test_a_files_traversal_to_metrics_with_a_login_is_refused(
    stack: RunningStack, user: tuple[dict[str, str], str]
) -> None:
    account, sid = user
    path = f"/api/v5/sessions/{sid}/files/../../../../../metrics"
    response = raw(stack, "GET", path, Authorization=account["Authorization"])
    check_envelope(response, 400, "invalid_path")
    assert not _is_metrics(response)


def test_a_long_query_within_the_header_limit_reaches_the_function(
    stack: RunningStack, user: tuple[dict[str, str], str]
) -> None:
    """A 40 KB cursor (Caddy's default limit, ~16 KiB, gave Go's plain 431 and a reset) is the
    function's own answer: the envelope, 422 for a cursor over its documented length."""
    auth = {"Authorization": user[0]["Authorization"]}
    with stack.client() as http:
        r = http.get("/api/v5/sessions", params={"cursor": "\x80" * 7_000}, headers=auth)
        error = check_envelope(r, 422)
        assert error["code"] == "validation_failed" and error["details"][0]["loc"] == ["query", "cursor"]
        assert len(str(r.request.url)) > 40_000


def test_a_client_cannot_choose_its_address(stack: RunningStack) -> None:
    """Two different spoofed addresses land in one bucket: the login throttle's key is the
    client address, and the failed-login log line shows which one the function used."""
    marks = []
    spoofs = (
        {"X-Envoy-External-Address": "203.0.113.7", "X-Forwarded-For": "198.51.100.9"},
        {"X-Envoy-External-Address": "192.0.2.44", "X-Real-IP": "192.0.2.45", "Forwarded": "for=192.0.2.46"},
    )
    with stack.client() as http:
        for headers in spoofs:
            email = f"nobody-{secrets.token_hex(4)}@example.test"
            marks.append(email)
            body = {"email": email, "password": "not the password at all"}
            check_envelope(http.post("/api/v5/auth/login", json=body, headers=headers), 401)

    def failures() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in stack.log("login").splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("msg") == "login failed"]

    found = wait_for(lambda: len(failures()) >= 2 and failures(), 10, "the failed-login log lines")
    assert [line["ip"] for line in found[-2:]] == ["127.0.0.1", "127.0.0.1"]
    text = stack.log("login")
    for spoofed in ("203.0.113.7", "198.51.100.9", "192.0.2.44", "192.0.2.45", "192.0.2.46"):
        assert spoofed not in text


def _slow_login(stack: RunningStack) -> socket.socket:
    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    head = "POST /api/v5/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    sock.sendall(head.encode() + b'{"email"')
    return sock


def test_slow_login_bodies_get_408_while_another_client_logs_in(stack: RunningStack) -> None:
    with stack.client() as http:
        account = register(http)
    slow = [_slow_login(stack) for _ in range(100)]  # many more than the login function's threads
    try:
        with stack.client() as http:
            body = {"email": account["email"], "password": account["password"]}
            data = check_envelope(http.post("/api/v5/auth/login", json=body), 200)
        assert data["tokens"]["access_token"]
        for sock in slow:
            sock.settimeout(60)
            answer = b""
            while not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer
            envelope = json.loads(payload)
            assert envelope["success"] is False and envelope["error"]["code"] == "request_timeout"
            assert re.search(rb"(?i)\r\nx-request-id: " + envelope["request_id"].encode(), head)
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.slow
def test_a_100_mib_upload_streams_through_the_front_door(
    stack: RunningStack, user: tuple[dict[str, str], str]
) -> None:
    account, sid = user
    auth = {"Authorization": account["Authorization"]}
    size, block = 100 * 1024 * 1024, os.urandom(1024 * 1024)

    def content() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    with httpx.Client(base_url=stack.url, timeout=300) as http:
        put = http.put(f"/api/v5/sessions/{sid}/files/big.bin", content=content(), headers=auth)
        assert put.status_code in (200, 201), put.text
        with http.stream("GET", f"/api/v5/sessions/{sid}/files/big.bin", headers=auth) as got:
            assert got.status_code == 200
            received = sum(len(chunk) for chunk in got.iter_raw())
    assert received == size


def test_a_long_poll_and_a_quiet_websocket_outlive_the_body_deadline(
    stack: RunningStack, user: tuple[dict[str, str], str]
) -> None:
    """The slow-client deadline (3 s on the test stack) bounds request bodies only: a 5 s long-poll
    answers, and a WebSocket quiet for 5 s still carries frames both ways."""
    from websockets.asyncio.client import connect

    from tests.e2e.test_relay import ready_workspace, ticket

    account, _ = user
    auth = {"Authorization": account["Authorization"]}
    body_timeout = float(stack.env["CODITECT_FRONTDOOR_BODY_TIMEOUT"])
    with stack.client() as http:
        # A new session: its change feed is empty, so the long-poll waits the whole 5 s.
        sid = check_envelope(http.post("/api/v5/sessions", json={"name": "long poll"}, headers=auth), 201)[
            "id"
        ]
        started = time.monotonic()
        changes = http.get(f"/api/v5/sessions/{sid}/files:changes", params={"wait": 5}, headers=auth)
        check_envelope(changes, 200)
        assert time.monotonic() - started > body_timeout
        wid = ready_workspace(stack, http, auth)
        protos = [f"coditect.ticket.{ticket(http, auth, wid)}", "coditect.relay"]

    async def quiet_echo() -> str:
        url = "ws" + stack.url.removeprefix("http") + f"/workspaces/{wid}/echo"
        async with connect(url, origin=stack.url, subprotocols=protos, proxy=None) as echo:  # type: ignore[arg-type]
            await asyncio.sleep(body_timeout + 2)
            await echo.send("still here")
            return str(await echo.recv())

    assert asyncio.run(quiet_echo()) == "still here"
