"""The files function as a real functions-framework (gunicorn) process: kill -9 mid-upload, and
bodies of unknown length (chunked transfer encoding) over a real socket."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coditect import registry
from coditect.devstack.plan import Planned, StackSettings, free_port
from coditect.files import gc, quota, upload
from tests.functional.files.conftest import Files
from tests.helpers import check_envelope

ROOT = Path(__file__).resolve().parents[3]
MiB = 1024 * 1024


class Server:
    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        spec = registry.function("files")
        self.port = free_port()
        planned = Planned(spec, ROOT / spec.source, self.port)
        base = dict(os.environ, CODITECT_KEYS_DIR=str(data_dir / "keys"), **extra_env)
        env = planned.env(StackSettings(root=ROOT, data_dir=data_dir), "http://127.0.0.1:9/", base)
        self.log = (data_dir / "files-server.log").open("ab")
        self.proc = subprocess.Popen(planned.argv(), env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        try:
            self._wait_healthy()
        except BaseException:
            self.kill()  # the fixture never sees a server that failed to start
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the files function exited at start"
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
            finally:
                conn.close()
        raise TimeoutError("the files function did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def server(data_dir: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**extra_env: str) -> Server:
        started.append(Server(data_dir, extra_env))
        return started[-1]

    yield start
    for s in started:
        s.kill()


def staged(fx: Files, tenant_id: str) -> int:
    return len(fx.db.transact(lambda tr: tr.get_range(*upload.uploads(tenant_id).range())))


def test_kill_9_during_a_50_mib_upload_leaves_the_old_content_and_gc_collects(fx: Files, server: Any) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    old = os.urandom(MiB)
    check_envelope(fx.put(alice, sid, "big.bin", old), 201)
    before = quota.usage(fx.db, alice.tenant_id)
    srv = server()
    sock = socket.create_connection(("127.0.0.1", srv.port))
    head = (
        f"PUT {fx.url(sid, 'big.bin')} HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: {alice.headers['Authorization']}\r\nContent-Length: {50 * MiB}\r\n\r\n"
    )
    sock.sendall(head.encode())
    sent = 0
    deadline = time.monotonic() + 60
    while staged(fx, alice.tenant_id) < 40 and time.monotonic() < deadline:  # ≥ 2.5 MiB staged, slowly
        sock.sendall(os.urandom(256 * 1024))
        sent += 256 * 1024
        time.sleep(0.01)
    assert staged(fx, alice.tenant_id) >= 40 and sent < 50 * MiB
    srv.kill()  # SIGKILL: no cleanup code of the upload runs
    sock.close()
    assert fx.get(alice, sid, "big.bin").data == old  # readers still see the old version
    assert check_envelope(fx.listing(alice, sid), 200)["items"][0]["version"] == 1
    assert quota.usage(fx.db, alice.tenant_id).physical_bytes > before.physical_bytes  # staged bytes exist
    result = gc.collect_garbage(fx.db, budget_seconds=60, grace_seconds=0, upload_stale_seconds=0)
    assert result["uploads_reaped"] == 1 and result["chunks_freed"] >= 40
    assert staged(fx, alice.tenant_id) == 0
    after = quota.usage(fx.db, alice.tenant_id)
    assert (after.logical_bytes, after.physical_bytes) == (before.logical_bytes, before.physical_bytes)
    assert fx.get(alice, sid, "big.bin").data == old


def chunked_put(port: int, path: str, headers: dict[str, str], pieces: Iterator[bytes]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("PUT", path)
        for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            for piece in pieces:
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413/507) and closed
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_bodies_of_unknown_length_stream_and_are_limited(fx: Files, server: Any) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    srv = server(CODITECT_MAX_FILE_SIZE=str(4 * MiB))
    data = os.urandom(3 * MiB + 123)
    status, body = chunked_put(
        srv.port,
        fx.url(sid, "c.bin"),
        alice.headers,
        (data[i : i + 100_000] for i in range(0, len(data), 100_000)),
    )
    assert status == 201, body[:300]
    assert json.loads(body)["data"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert fx.get(alice, sid, "c.bin").data == data
    status, body = chunked_put(
        srv.port, fx.url(sid, "big.bin"), alice.headers, (os.urandom(MiB) for _ in range(6))
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "file_too_large"
    assert [i["path"] for i in check_envelope(fx.listing(alice, sid), 200)["items"]] == ["c.bin"]
    assert staged(fx, alice.tenant_id) == 0  # released by the handler at once
