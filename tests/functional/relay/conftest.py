"""A real relay (uvicorn subprocess) in front of a real workspace program, over a real store.

Module-scoped: one relay and one workspace program per test module; tests isolate themselves by
using fresh users and workspaces (`Stack.login`, `Stack.workspace`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from coditect.devstack.plan import free_port
from coditect.identity import login_sessions as login_sessions
from coditect.identity import repository as identity
from coditect.identity.context import TenantContext, mint
from coditect.identity.models import UserRecord
from coditect.store import Database, open_store
from coditect.workspaces import lifecycle, repository, tickets
from coditect.workspaces.models import WorkspaceRecord
from coditect.workspaces.provisioner import Endpoint

ORIGIN = "https://app.example"
PER_USER_CAP = 3


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy: {log.read_text()[-2000:]}")


def start(argv: list[str], env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(f"http://127.0.0.1:{port}", proc, log)
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Login:
    ctx: TenantContext
    session: object  # AuthSessionRecord


@dataclass
class Stack:
    db: Database
    relay_url: str  # http://127.0.0.1:<port>
    relay_proc: subprocess.Popen[bytes]
    relay_log: Path
    workspace_port: int

    @property
    def ws_url(self) -> str:
        return "ws" + self.relay_url.removeprefix("http")

    def login(self, tenant_id: str | None = None) -> Login:
        """A user with a live login session opened by identity (as /auth/login does)."""
        tid, uid = tenant_id or str(uuid.uuid4()), str(uuid.uuid4())
        now = time.time()
        user = UserRecord(id=uid, tenant_id=tid, email=f"{uid}@example.com", email_key=f"{uid}@example.com",
                          name="Test", role="member", password_hash="x", created_at=now, updated_at=now)  # fmt: skip
        material = login_sessions.Material.new()
        session, _ = self.db.transact(
            lambda tr: login_sessions.open_session(
                tr, user=user, material=material, pepper=b"p" * 32, now=now, user_agent="pytest"
            )
        )
        ctx = mint(tenant_id=tid, user_id=uid, session_id=session.id, role="member")
        return Login(ctx, session)

    def logout(self, login: Login) -> None:
        """Identity's logout: revoke the login session (clears its live marker)."""

        def end(tr):  # type: ignore[no-untyped-def]
            current = identity.get_session(tr, login.ctx.tenant_id, login.ctx.session_id)
            login_sessions.revoke(tr, current, now=time.time(), reason="logout")

        self.db.transact(end)

    def workspace(self, login: Login, port: int | None = None) -> WorkspaceRecord:
        """A `ready` workspace of the user whose endpoint is the running workspace program."""
        at = datetime.now(UTC)
        record = WorkspaceRecord(
            id=str(uuid.uuid4()), tenant_id=login.ctx.tenant_id, user_id=login.ctx.user_id,
            session_id=str(uuid.uuid4()), status="requested", created_at=at, updated_at=at,
        )  # fmt: skip
        record = lifecycle.advance(record, "provisioning", at)
        record = lifecycle.advance(
            record, "ready", at, endpoint=Endpoint("127.0.0.1", port or self.workspace_port)
        )
        self.db.transact(repository.save, record, None)
        return record

    def stop(self, record: WorkspaceRecord) -> None:
        def body(tr):  # type: ignore[no-untyped-def]
            current = repository.get(tr, record.tenant_id, record.id)
            repository.save(
                tr,
                lifecycle.advance(current, "stopping", current.updated_at, reason="stopped_by_user"),
                current,
            )

        self.db.transact(body)

    def ticket(self, login: Login, record: WorkspaceRecord, *, now: float | None = None) -> str:
        return tickets.issue_ticket(self.db, login.ctx, record.id, now=now).ticket

    def relay_rss(self) -> int:
        """Resident memory of the relay process, in bytes."""
        for line in Path(f"/proc/{self.relay_proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("relay")
    store_url = f"sqlite://{tmp / 'store.db'}"
    db = open_store(store_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODITECT_")}
    wport = free_port()
    program = start([sys.executable, "-m", "coditect.workspaces.program", "--port", str(wport)], env,
                    tmp / "workspace.log", wport)  # fmt: skip
    rport = free_port()
    relay_env = dict(
        env,
        CODITECT_DATA_DIR=str(tmp),
        CODITECT_STORE=store_url,
        CODITECT_CORS_ORIGINS=f'["{ORIGIN}"]',
        CODITECT_PUBLIC_BASE_URL=ORIGIN,
        CODITECT_RELAY_MAX_CONNECTIONS_PER_USER=str(PER_USER_CAP),
        CODITECT_LOG_LEVEL="INFO",
    )
    relay = start([sys.executable, "-m", "coditect.relay", "--host", "127.0.0.1", "--port", str(rport)],
                  relay_env, tmp / "relay.log", rport)  # fmt: skip
    try:
        yield Stack(db, f"http://127.0.0.1:{rport}", relay, tmp / "relay.log", wport)
    finally:
        stop_process(relay)
        stop_process(program)
        db.close()
