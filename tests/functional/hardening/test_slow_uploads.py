"""Issue 15 item 16: slow uploads do not starve a function (a real functions-framework process,
gunicorn with 4 threads, no proxy in front).

20 connections start an upload without a token and then trickle: each gets its 401 (with
`Connection: close`) after the headers, not after a body that never comes, and meanwhile another
user's file operations all complete. An authenticated upload that stalls gets 408
`request_timeout` once its grace period (2 s here) is over. Waits are bounded; nothing is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coditect.devstack.plan import free_port
from tests.helpers import check_envelope, slow_request

ROOT = Path(__file__).resolve().parents[3]
SLOW = 20
WAIT = 30.0  # a bound on every wait, not an expectation


@pytest.fixture
def files_process(accounts: Any, data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CODITECT_DATA_DIR": str(data_dir), "THREADS": "4", "WORKERS": "1",
           "CODITECT_BODY_GRACE_SECONDS": "2"}  # fmt: skip
    log = open(data_dir / "files.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", "handle", "--source",
         str(ROOT / "functions" / "files" / "main.py"), "--signature-type", "http",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (data_dir / "files.log").read_text()
        time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def start_upload(port: int, path: str, headers: dict[str, str], first: bytes) -> socket.socket:
    return slow_request(
        port, "PUT", path, length=1_000_000, first=first, headers=headers, content_type=None, timeout=WAIT
    )


def answers(socks: list[socket.socket]) -> dict[socket.socket, bytes]:
    """Whatever each socket receives until its peer closes it, within one bounded wait."""
    got: dict[socket.socket, bytes] = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + WAIT
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_), [], [], 0.5)
        for s in ready:
            chunk = s.recv(65536)
            got[s] += chunk
            if not chunk:
                open_.discard(s)
    return got


def status_and_body(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_slow_unauthenticated_uploads_get_401_at_once_and_starve_nobody(
    accounts: Any, files_process: str
) -> None:
    alice = accounts.register()
    sessions = accounts.client("sessions")
    sid = check_envelope(sessions.post("/api/v5/sessions", json={"name": "s"}, headers=alice.headers), 201)[
        "id"
    ]
    port = int(files_process.rsplit(":", 1)[1])
    slow = [start_upload(port, f"/api/v5/sessions/{sid}/files/slow{i}.bin", {}, b"x") for i in range(SLOW)]
    stop = threading.Event()

    def trickle() -> None:  # one more byte per connection every half second, as a slow client does
        while not stop.wait(0.5):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.send(b"x")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        # Another user's file operations complete while the slow connections are still open.
        with httpx.Client(base_url=files_process, headers=alice.headers, timeout=WAIT) as client:
            for i in range(10):
                r = client.put(f"/api/v5/sessions/{sid}/files/ok{i}.txt", content=f"data {i}".encode())
                assert r.status_code == 201, r.text
                assert client.get(f"/api/v5/sessions/{sid}/files/ok{i}.txt").content == f"data {i}".encode()
        got = answers(slow)
        for raw in got.values():
            assert raw, "no answer: the function waited for a body that never came"
            status, headers, body = status_and_body(raw)
            assert status == 401 and body["error"]["code"] == "token_missing"
            assert headers["connection"] == "close"
    finally:
        stop.set()
        trickler.join()
        for s in slow:
            s.close()


def test_a_stalled_authenticated_upload_gets_408(accounts: Any, files_process: str) -> None:
    alice = accounts.register()
    sessions = accounts.client("sessions")
    sid = check_envelope(sessions.post("/api/v5/sessions", json={"name": "s"}, headers=alice.headers), 201)[
        "id"
    ]
    port = int(files_process.rsplit(":", 1)[1])
    stalled = start_upload(port, f"/api/v5/sessions/{sid}/files/stalled.bin",
                           {"Authorization": alice.headers["Authorization"]}, b"y" * 10)  # fmt: skip
    try:
        (raw,) = answers([stalled]).values()
        status, headers, body = status_and_body(raw)
        assert status == 408 and body["error"]["code"] == "request_timeout"
        assert headers["connection"] == "close"
    finally:
        stalled.close()
    with httpx.Client(base_url=files_process, headers=alice.headers, timeout=WAIT) as client:
        assert client.get(f"/api/v5/sessions/{sid}/files/stalled.bin").status_code == 404  # nothing visible
