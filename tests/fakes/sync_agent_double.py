"""TEST DOUBLE of the sync agent (`python -m coditect.sync`): honours the fixed interface only.

    python tests/fakes/sync_agent_double.py [--offline] --api-url URL --session-id SID \
        --workspace-id WID --root DIR --credential-file PATH --health-port PORT --state-file PATH \
        [--flush-timeout 20]

It is NOT the agent (no watching, no pull, no conflicts): it hydrates the tree from the files API
with the credential, serves /healthz (503 → 200) and /status, PUTs its report, and on SIGTERM
uploads every file whose content differs from what it hydrated ("the flush"), reports and exits 0.
A file named `.double-hang-flush` in the tree makes the flush hang: after --flush-timeout it exits
75 with the pending paths on stderr and a final report in state `flush_timeout`. `--offline`
skips the API (functional tests run functions in-process, with no server to call).
Stdlib only, so it also runs where only the interpreter is available.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HANG_MARKER = ".double-hang-flush"


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.root)
        self.token = Path(args.credential_file).read_text().strip()
        self.base = args.api_url.rstrip("/")
        self.known: dict[str, str] = {}  # path → sha256 as hydrated/pushed
        self.report: dict[str, Any] = {
            "state": "hydrating", "last_push_at": None, "last_pull_at": None, "pending": 0,
            "pending_paths": [], "conflicts": [], "conflict_count": 0, "skipped": [],
        }  # fmt: skip
        self.hydrated = False

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None and path.endswith("/sync"):
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def files(self, path: str = "") -> str:
        return f"/api/v5/sessions/{self.args.session_id}/files" + (
            "/" + urllib.parse.quote(path) if path else ""
        )

    def put_report(self) -> None:
        if not self.args.offline:
            self.call(
                "PUT", f"/api/v5/workspaces/{self.args.workspace_id}/sync", json.dumps(self.report).encode()
            )

    def hydrate(self) -> None:
        if not self.args.offline:
            cursor = None
            while True:
                query = "?recursive=true&limit=200" + (
                    f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""
                )
                status, raw = self.call("GET", self.files() + query)
                if status != 200:
                    raise SystemExit(f"listing failed: {status} {raw[:200]!r}")
                data = json.loads(raw)["data"]
                for item in data["items"]:
                    target = self.root / item["path"]
                    if item["type"] == "directory":
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    status, content = self.call("GET", self.files(item["path"]))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                    self.known[item["path"]] = hashlib.sha256(content).hexdigest()
                cursor = data.get("next_cursor")
                if not cursor:
                    break
        self.hydrated = True
        self.report.update(state="syncing", last_pull_at=datetime.now(UTC).isoformat())
        self.put_report()

    def changed(self) -> list[str]:
        out = []
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(self.root).as_posix()
                if (
                    rel != HANG_MARKER
                    and self.known.get(rel) != hashlib.sha256(path.read_bytes()).hexdigest()
                ):
                    out.append(rel)
        return out

    def flush(self) -> int:
        pending = self.changed()
        self.report.update(state="flushing", pending=len(pending), pending_paths=pending[:50])
        self.put_report()
        if (self.root / HANG_MARKER).exists():
            time.sleep(self.args.flush_timeout)
            self.report.update(state="flush_timeout")
            self.put_report()
            print("flush timed out; pending: " + " ".join(pending), file=sys.stderr, flush=True)
            return 75
        for rel in pending:
            if not self.args.offline:
                self.call("PUT", self.files(rel), (self.root / rel).read_bytes())
        self.report.update(
            state="stopped", pending=0, pending_paths=[], last_push_at=datetime.now(UTC).isoformat()
        )
        self.put_report()
        return 0


def serve(agent: Agent, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                code, body = (200, b"ok") if agent.hydrated else (503, b"hydrating")
            elif self.path == "/status":
                code, body = 200, json.dumps(agent.report).encode()
            else:
                code, body = 404, b""
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offline", action="store_true")
    for flag in ("api-url", "session-id", "workspace-id", "root", "credential-file", "state-file"):
        parser.add_argument(f"--{flag}", required=True)
    parser.add_argument("--health-port", type=int, required=True)
    parser.add_argument("--flush-timeout", type=float, default=20.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agent = Agent(args)
    serve(agent, args.health_port)
    agent.hydrate()
    Path(args.state_file).write_text(json.dumps(agent.known))
    while not stop.wait(3600):
        pass
    os._exit(agent.flush())


if __name__ == "__main__":
    main()
