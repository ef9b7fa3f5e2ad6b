"""Fixtures for the workspace functions driven in-process.

- `sink`: a real HTTP server on loopback standing in for the Broker's ingress (K_SINK points at
  it); it records every binary CloudEvent the functions publish.
- `ws`: clients of workspace-allocate, workspaces and provisioner (the provisioner built by
  functions-framework with signature type "cloudevent"), helpers to make a session for an account
  and to deliver recorded events to the provisioner as the Broker would. Workspaces run as real
  local processes under <data_dir>/workspaces; every one still running is stopped afterwards.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coditect.config import get_settings

ROOT = Path(__file__).resolve().parents[3]
SYNC_DOUBLE = ROOT / "tests" / "fakes" / "sync_agent_double.py"


@pytest.fixture(autouse=True)
def offline_sync_agent(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspaces started here get the sync agent's TEST DOUBLE, offline: the functions run
    in-process, so there is no API for an agent to call."""
    from coditect.config import get_settings

    monkeypatch.setenv(
        "CODITECT_WORKSPACE_SYNC_COMMAND", json.dumps([sys.executable, str(SYNC_DOUBLE), "--offline"])
    )
    get_settings.cache_clear()


@dataclass
class Sink:
    url: str
    events: list[CloudEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_type(self, suffix: str) -> list[CloudEvent]:
        with self.lock:
            return [e for e in self.events if e["type"] == f"com.coditect.workspace.{suffix}"]


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    recorded: list[CloudEvent] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            attrs = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            event = CloudEvent(attrs, json.loads(body) if body else None)
            with lock:
                recorded.append(event)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    s = Sink(f"http://127.0.0.1:{server.server_port}/", recorded, lock)
    monkeypatch.setenv("K_SINK", s.url)
    get_settings.cache_clear()  # the functions started after this read the sink at cold start
    yield s
    server.shutdown()
    server.server_close()


class Workspaces:
    def __init__(self, accounts: Any, function_client: Callable[[str], Any], sink: Sink) -> None:
        self.accounts = accounts
        self.sink = sink
        self.allocate_client = function_client("workspace-allocate")
        self.allocate_app = sys.modules["main"].app
        self.client = function_client("workspaces")
        self.app = sys.modules["main"].app
        from functions_framework import create_app

        source = ROOT / "functions" / "provisioner" / "main.py"
        self.provisioner_client = create_app("handle", str(source), "cloudevent").test_client()
        self.provisioner_module = sys.modules["main"]
        self.delivered: set[str] = set()

    @property
    def db(self) -> Any:
        return self.app.db

    def session_for(self, account: Any) -> str:
        """A live workspace session owned by `account` (written through the sessions area's table
        until functions/sessions exists, then created through it)."""
        if (ROOT / "functions" / "sessions" / "main.py").is_file():
            response = self.accounts.client("sessions").post(
                "/api/v5/sessions", json={"name": "ws test"}, headers=account.headers
            )
            assert response.status_code == 201, response.get_data(as_text=True)
            return str(response.get_json()["data"]["id"])
        from coditect.sessions import repository
        from coditect.sessions.models import SessionRecord

        sid, now = str(uuid.uuid4()), datetime.now(UTC)
        record = SessionRecord(
            id=sid, owner_id=account.user_id, name="ws test", created_at=now, updated_at=now
        )
        self.db.transact(
            lambda tr: repository.sessions(account.tenant_id).put(tr, (sid, repository.REC), record)
        )
        return sid

    def allocate(self, account: Any, session_id: str, **headers: str) -> Any:
        return self.allocate_client.post(
            "/api/v5/workspaces", json={"session_id": session_id}, headers={**account.headers, **headers}
        )

    def deliver(self, event: CloudEvent) -> Any:
        """POST one event to the provisioner function as the Broker does (binary mode)."""
        headers, body = to_binary(event)
        return self.provisioner_client.post("/", headers=headers, data=body)

    def deliver_pending(self, suffix: str | None = None) -> list[Any]:
        """Deliver every recorded requested/stop_requested event not delivered yet."""
        answers = []
        for event in list(self.sink.events):
            if event["type"] not in (
                "com.coditect.workspace.requested", "com.coditect.workspace.stop_requested",
            ) or event["id"] in self.delivered:  # fmt: skip
                continue
            if suffix is not None and event["type"] != f"com.coditect.workspace.{suffix}":
                continue
            self.delivered.add(event["id"])
            answers.append(self.deliver(event))
        return answers

    def record(self, account: Any, workspace_id: str) -> Any:
        from coditect.workspaces import repository

        return self.db.transact(lambda tr: repository.get(tr, account.tenant_id, workspace_id))


@pytest.fixture
def ws(
    accounts: Any, function_client: Callable[[str], Any], sink: Sink, data_dir: Path
) -> Iterator[Workspaces]:

    from coditect.workspaces import backends

    backends.override(None)
    env = Workspaces(accounts, function_client, sink)
    yield env
    state_dir = backends.state_dir(get_settings())
    if state_dir.exists():
        from coditect.workspaces.local import LocalProvisioner

        local = LocalProvisioner(state_dir)
        for workspace_id in local.list_workloads():
            local.stop(workspace_id)
    backends.override(None)
