"""The real workspace IDE through the real relay, with authentication (issue 13 item 10), opt-in.

Runs when CODITECT_THEIA_APP names a Theia application built by `nox -s theia` (its directory,
e.g. .nox/theia-app): a private stack runs it as the local workspace program
(CODITECT_WORKSPACE_COMMAND, the opt-in setting), a user allocates a workspace, and through the
gateway and the relay, with the ticket cookie only: the IDE's page and its frontend bundle load,
and the IDE backend's socket.io endpoint under /workspaces/{id}/ answers its handshake. Without the
cookie the relay refuses. Then a real browser (Chromium, when Playwright is installed) opens the
ticket URL and the IDE's application shell renders, its backend connection live through the relay.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.stack import start_stack, wait_for
from tests.helpers import check_envelope

APP = os.environ.get("CODITECT_THEIA_APP", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (APP and Path(APP, "lib/backend/main.js").is_file()), reason="set CODITECT_THEIA_APP"
    ),
]


def test_the_ide_loads_through_the_relay_with_a_ticket(tmp_path: Path) -> None:
    main = str(Path(APP, "lib/backend/main.js").resolve())
    home = tmp_path / "home"
    (home / "workspace").mkdir(parents=True)
    command = ["node", main, str(home / "workspace"), "--hostname=127.0.0.1", "--port={port}"]
    stack = start_stack(tmp_path, {"CODITECT_WORKSPACE_COMMAND": json.dumps(command), "HOME": str(home)})
    try:
        with stack.client() as http:
            body = {"email": f"ide-{secrets.token_hex(4)}@example.test",
                    "password": f"e2e-{secrets.token_hex(8)}-quartz", "name": "IDE"}  # fmt: skip
            token = check_envelope(http.post("/api/v5/auth/register", json=body), 201)["tokens"][
                "access_token"
            ]
            auth = {"Authorization": f"Bearer {token}"}
            sid = check_envelope(http.post("/api/v5/sessions", json={"name": "ide"}, headers=auth), 201)["id"]
            wid = check_envelope(
                http.post("/api/v5/workspaces", json={"session_id": sid}, headers=auth), 202
            )["id"]

            def ready() -> bool:
                shown = check_envelope(http.get(f"/api/v5/workspaces/{wid}", headers=auth), 200)
                assert shown["status"] not in ("failed", "stopped"), stack.log("provisioner")
                return bool(shown["status"] == "ready")

            wait_for(ready, 120, "the Theia workspace to become ready")
            ticket = check_envelope(http.post(f"/api/v5/workspaces/{wid}/tickets", headers=auth), 201)
            base = f"/workspaces/{wid}/"
            assert httpx.get(stack.url + base, timeout=10).status_code == 401  # no ticket, no cookie
        with httpx.Client(base_url=stack.url, timeout=60, follow_redirects=True) as browser:
            page = browser.get(urlsplit(ticket["http_url"]).path, params={"ticket": ticket["ticket"]})
            assert page.status_code == 200 and "bundle.js" in page.text, page.text[:500]
            bundle = browser.get(base + "bundle.js")
            assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
            handshake = browser.get(base + "socket.io/", params={"EIO": "4", "transport": "polling"})
            assert handshake.status_code == 200 and '"sid"' in handshake.text, handshake.text[:300]
            with stack.client() as api:
                second = check_envelope(api.post(f"/api/v5/workspaces/{wid}/tickets", headers=auth), 201)
        open_in_browser(f"{stack.url}{base}?ticket={second['ticket']}")
    finally:
        stack.stop()


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]  # fmt: skip


def open_in_browser(url: str) -> None:
    """Chromium opens the ticket URL; Theia's application shell renders and its backend is connected."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="domcontentloaded", timeout=120_000)
            page.wait_for_selector("#theia-app-shell", timeout=120_000)
            # the workspace's name comes from the IDE backend over its WebSocket, through the relay
            page.wait_for_function("() => document.title.toLowerCase().includes('workspace')", timeout=60_000)
            assert "/workspaces/" in page.url and not errors, (page.title(), errors)
        finally:
            browser.close()
