"""The front door's real Caddy on a rendered config, and fake functions to put behind it, for
tests/unit/devstack/test_devstack_frontdoor*.py."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from coditect.devstack import frontdoor


@contextmanager
def running_caddy(work: Path, config: dict[str, Any], port: int) -> Iterator[str]:
    """Caddy on `config` (its HOME and data dirs in `work`) until the block ends; yields its URL
    once it answers."""
    path = work / "frontdoor.json"
    path.write_text(json.dumps(config))
    env = {
        "HOME": str(work),
        "XDG_DATA_HOME": str(work),
        "XDG_CONFIG_HOME": str(work),
        "PATH": "/usr/bin:/bin",
    }
    with (work / "caddy.log").open("wb") as log:
        proc = subprocess.Popen([frontdoor.caddy_binary(), "run", "--config", str(path)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (work / "caddy.log").read_text()
                assert time.monotonic() < deadline, "caddy did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


class FakeFunction:
    """A fake function on a loopback port (HTTP/1.1, keep-alive): every request, on a handler
    object per connection, goes to `answer`; `stop()` ends it."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                outer.answer(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_one

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply_json(request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
    """Answer 200 with `body` as JSON."""
    data = json.dumps(body).encode()
    request.send_response(200)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
