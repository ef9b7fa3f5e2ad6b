"""Screenshots of every console screen into docs/console/ (a private stack, headless chromium).

    .venv/bin/python -m tests.e2e.console.screenshots

Not a test: it regenerates the pictures the docs show. Needs the console built (`nox -s console`).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import expect, sync_playwright

from tests.e2e.console.conftest import CHROMIUM, FLAGS
from tests.e2e.stack import start_stack

OUT = Path(__file__).resolve().parents[3] / "docs" / "console"
PASSWORD = "correct horse battery staple 42!"
CODE = '''"""A tiny example."""


def greet(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(greet("Coditect"))
'''


def shot(page: Any, name: str) -> None:
    page.wait_for_timeout(300)  # let transitions settle
    page.screenshot(path=str(OUT / f"{name}.png"))
    print("wrote", OUT / f"{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 800})
                page = context.new_page()
                tour(page, stack)
                browser.close()
        finally:
            stack.stop()


def tour(page: Any, stack: Any) -> None:
    page.goto("/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    shot(page, "login")
    page.get_by_role("link", name="Create account").click()
    page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.test")
    page.get_by_label("Password").fill(PASSWORD)
    shot(page, "create-account")
    page.get_by_role("button", name="Create account").click()
    for name in ("Analytical engine", "Notes on Menabrea"):
        page.get_by_role("button", name="New session").click()
        page.get_by_label("Session name").fill(name)
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        page.goto("/#/")
    page.get_by_role("button", name="New session").click()
    page.get_by_label("Session name").fill("Bernoulli numbers")
    shot(page, "sessions")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="Bernoulli numbers")).to_be_visible()
    sid = re.search(r"#/s/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]
    with stack.client() as http:
        token = http.post(
            "/api/v5/auth/login", json={"email": "ada@example.test", "password": PASSWORD}
        ).json()
        auth = {"Authorization": f"Bearer {token['data']['tokens']['access_token']}"}
        for path, body in (
            ("src/greet.py", CODE),
            ("README.md", "# Bernoulli\n"),
            ("data/table.json", "{}\n"),
        ):
            http.put(f"/api/v5/sessions/{sid}/files/{path}", content=body.encode(), headers=auth)
    page.reload()
    page.get_by_role("treeitem", name="greet.py").click()
    expect(page.get_by_role("region", name="Editor").locator(".cm-content")).to_contain_text("def greet")
    page.get_by_role("region", name="Editor").locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("# edited in the browser\n")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved version")).to_be_visible()
    page.get_by_text("Versions").click()
    shot(page, "session-editor")
    with stack.client() as http:
        http.put(f"/api/v5/sessions/{sid}/files/src/greet.py", content=b"# changed elsewhere\n", headers=auth)
    page.keyboard.type("x = 1\n")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_be_visible()
    shot(page, "conflict")
    page.get_by_role("button", name="Reload theirs").click()
    page.get_by_role("button", name="Start workspace").click()
    expect(page.get_by_role("status", name="Workspace status")).to_have_text("ready", timeout=90_000)
    terminal = page.get_by_role("region", name="Terminal")
    expect(terminal.locator(".xterm-rows")).to_contain_text(re.compile(r"\S"), timeout=30_000)
    terminal.locator(".xterm-screen").click()
    page.keyboard.type("echo hello from the relay; uname -s\n")
    page.wait_for_timeout(800)
    terminal.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / "workspace-terminal.png"), full_page=True)
    page.get_by_role("button", name="Stop workspace").click()
    expect(page.get_by_role("button", name="Start workspace")).to_be_visible(timeout=60_000)
    page.get_by_role("tab", name="Conversations").click()
    page.get_by_label("Conversation title").fill("Plan the table")
    page.get_by_role("button", name="Start conversation").click()
    for text in ("Compute B(n) up to n = 10.", "Use the recurrence with binomial coefficients."):
        page.get_by_role("textbox", name="Message").fill(text)
        page.get_by_role("button", name="Post message").click()
        expect(page.get_by_text(text)).to_be_visible()
    shot(page, "conversations")
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Login sessions")).to_be_visible()
    page.get_by_label("Key").fill("editor.theme")
    page.get_by_label("Value (JSON or text)").fill('"light"')
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.get_by_text("editor.theme")).to_be_visible()
    shot(page, "account")
    page.get_by_role("link", name="Tenant").click()
    page.get_by_role("button", name="Create invite").click()
    expect(page.get_by_text("Invite code")).to_be_visible()
    shot(page, "tenant-admin")


if __name__ == "__main__":
    main()
