"""Helpers the tests of several areas share: one checker for the envelope and headers of every API
response (JupyterHub's tests/utils.py idea), slow clients over raw sockets, threads run together, whether a process lives,
and the two views of infra/ that the deploy and infra tests both take."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def check_envelope(response: Any, status: int, code: str | None = None) -> Any:
    """Assert the status, the contract's envelope and headers; return `data` (or the error)."""
    if not hasattr(response, "get_json"):  # an httpx.Response (e2e tests over real sockets)
        response = _SocketResponse(response)
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.headers.get("X-Request-Id"), "every response carries X-Request-Id"
    if status == 204:
        assert response.get_data() == b""
        return None
    body = response.get_json()
    assert isinstance(body, dict), "JSON body expected"
    if status < 400:
        assert body["success"] is True and "data" in body, body
        assert response.headers.get("Cache-Control") == "no-store"
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        return body["data"]
    assert body["success"] is False, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and "Traceback" not in error["message"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    if code is not None:
        assert error["code"] == code, error
    return error


class _SocketResponse:
    """The few Flask test-response methods check_envelope uses, over an httpx.Response."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self._response = response

    def get_json(self) -> Any:
        return self._response.json()

    def get_data(self, as_text: bool = False) -> Any:
        return self._response.text if as_text else self._response.content


def alive(pid: int) -> bool:
    """True unless process `pid` is gone or has exited (a zombie not yet reaped, or dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def slow_request(
    port: int,
    method: str,
    path: str,
    *,
    length: int,
    first: bytes,
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
    host: str = "127.0.0.1",
    timeout: float | None = None,
) -> socket.socket:
    """A client that sends a request's head announcing a `length`-byte body, then only `first`
    of that body, and stalls (the socket stays open for the caller to read the answer)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    headers = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    sock.sendall(f"{head}Content-Length: {length}\r\n\r\n".encode() + first)
    return sock


def read_408(sock: socket.socket, timeout: float) -> tuple[bytes, dict[str, Any]]:
    """Read a raw socket's answer until its JSON body is complete (or the peer closes); assert it
    is the slow-body 408 with code `request_timeout`; return its head and its envelope."""
    sock.settimeout(timeout)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    envelope = json.loads(body)
    assert envelope["error"]["code"] == "request_timeout", envelope
    return head, envelope


def run_threads(works: Iterable[Callable[[], object]], timeout: float = 120.0) -> None:
    """Run each of `works` in its own thread, all at once, and wait for every one to end (within
    `timeout` each: one that hangs fails the test instead of being left running)."""
    threads = [threading.Thread(target=work) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"


def kustomize(directory: Path) -> str:
    """`kubectl kustomize directory`: the YAML of every object the overlay deploys."""
    return subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def role_grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """What an RBAC Role grants: the verbs by (API group, resource)."""
    return {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
