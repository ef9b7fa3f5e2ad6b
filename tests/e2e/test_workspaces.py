"""Workspaces end to end on the local stack: front door → workspace-allocate → broker → provisioner →
a real LocalProvisioner process; tickets; stop → stopped and the process is gone.

(The relay's WebSocket part is added by the relay's own tests.)"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from tests.e2e.stack import RunningStack, new_session, register, wait_for
from tests.helpers import alive, check_envelope

pytestmark = pytest.mark.e2e


def status_of(http: httpx.Client, headers: dict[str, str], wid: str) -> dict[str, str]:
    return dict(check_envelope(http.get(f"/api/v5/workspaces/{wid}", headers=headers), 200))


def test_allocate_ready_ticket_stop(stack: RunningStack) -> None:
    with stack.client() as http:
        headers = register(http)
        sid = new_session(http, headers)
        key = {"Idempotency-Key": secrets.token_hex(8)}
        allocated = check_envelope(
            http.post("/api/v5/workspaces", json={"session_id": sid}, headers={**headers, **key}), 202
        )
        wid = allocated["id"]
        assert allocated["status"] == "requested"
        again = check_envelope(
            http.post("/api/v5/workspaces", json={"session_id": sid}, headers={**headers, **key}), 202
        )
        assert again["id"] == wid

        def ready() -> dict[str, str] | None:
            shown = status_of(http, headers, wid)
            assert shown["status"] not in ("failed", "stopped"), (shown, stack.log("provisioner"))
            return shown if shown["status"] == "ready" else None

        wait_for(ready, 60, "the workspace to become ready")
        state_file = stack.data_dir / "workspaces" / f"{wid}.json"
        pid = json.loads(state_file.read_text())["pid"]
        assert alive(pid)
        assert len(list((stack.data_dir / "workspaces").glob("*.json"))) >= 1

        ticket = check_envelope(http.post(f"/api/v5/workspaces/{wid}/tickets", headers=headers), 201)
        assert ticket["expires_in"] <= 60 and len(ticket["ticket"]) >= 22
        assert ticket["http_url"].endswith(f"/workspaces/{wid}/")
        assert ticket["websocket_url"].startswith(("ws://", "wss://"))

        stopping = check_envelope(http.delete(f"/api/v5/workspaces/{wid}", headers=headers), 202)
        assert stopping["status"] == "stopping"
        wait_for(lambda: status_of(http, headers, wid)["status"] == "stopped", 60, "the workspace to stop")
        final = status_of(http, headers, wid)
        assert final["status_reason"] == "stopped_by_user"
        wait_for(lambda: not alive(pid), 10, "the workspace process to exit")
        assert not state_file.exists()
        check_envelope(
            http.post(f"/api/v5/workspaces/{wid}/tickets", headers=headers), 409, "workspace_not_ready"
        )
