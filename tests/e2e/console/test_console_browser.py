"""The web console in a real browser (headless Debian chromium) on the real local stack: the issue's
journey, the 412 conflict, logout and refresh-token reuse, with no console error or CSP violation
allowed (the `page` fixture)."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.console.conftest import BrowserErrors
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery staple 42!"
TEXT = "hello from the browser"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def register(page: Any) -> str:
    """Create an account through the UI; returns its email."""
    email = f"console-{secrets.token_hex(5)}@example.test"
    page.goto("/")
    page.get_by_role("link", name="Create account").click()
    page.get_by_label("Name", exact=True).fill("Ada Console")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="New session")).to_be_visible()
    return email


def new_session(page: Any, name: str) -> str:
    page.get_by_role("button", name="New session").click()
    page.get_by_label("Session name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    match = re.search(r"#/s/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


def new_file(page: Any, name: str) -> None:
    page.get_by_role("button", name="New file").click()
    page.get_by_label("File name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("treeitem", name=name)).to_be_visible()


def editor_text(page: Any) -> Any:
    return page.get_by_role("region", name="Editor").locator(".cm-content")


def type_in_editor(page: Any, text: str) -> None:
    # The file's view is open (not the "Select a file" placeholder); its editor may still be
    # loading: a click anywhere in the region focuses the editor, now or once it is there.
    expect(page.get_by_role("button", name="Save")).to_be_visible()
    page.get_by_role("region", name="Editor").click()
    expect(editor_text(page)).to_be_focused()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def api_token(stack: Any, email: str) -> str:
    with stack.client() as http:
        data = check_envelope(
            http.post("/api/v5/auth/login", json={"email": email, "password": PASSWORD}), 200
        )
    return str(data["tokens"]["access_token"])


def api_file(stack: Any, token: str, sid: str, path: str) -> httpx.Response:
    with stack.client() as http:
        return http.get(f"/api/v5/sessions/{sid}/files/{path}", headers={"Authorization": f"Bearer {token}"})


def start_workspace(page: Any) -> None:
    page.get_by_role("button", name="Start workspace").click()
    expect(page.get_by_role("status", name="Workspace status")).to_have_text("ready", timeout=90_000)
    terminal = page.get_by_role("region", name="Terminal")
    expect(terminal).to_be_visible()
    # the shell's prompt arrives through the relay
    expect(terminal.locator(".xterm-rows")).to_contain_text(re.compile(r"\S"), timeout=30_000)


def test_journey_account_session_file_save_reload_workspace(page: Any, stack: Any) -> None:
    email = register(page)
    sid = new_session(page, "Browser journey")
    new_file(page, "hello.txt")
    type_in_editor(page, TEXT)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved version")).to_be_visible()

    page.reload()  # the access token was in memory only: the refresh cookie signs us back in
    expect(editor_text(page)).to_have_text(TEXT)  # the open file is in the URL: reopened as it was
    expect(page.get_by_role("treeitem", name="hello.txt")).to_have_attribute("aria-selected", "true")
    token = api_token(stack, email)
    response = api_file(stack, token, sid, "hello.txt")
    assert response.status_code == 200 and response.content == TEXT.encode()

    start_workspace(page)
    page.get_by_role("button", name="Stop workspace").click()
    expect(page.get_by_role("status", name="Workspace status")).to_have_text(
        re.compile("stopping|stopped"), timeout=30_000
    )
    expect(page.get_by_role("button", name="Start workspace")).to_be_visible(timeout=60_000)


def test_a_click_on_the_editor_while_it_loads_focuses_it_once_loaded(page: Any, stack: Any) -> None:
    held: list[Any] = []
    page.route(re.compile(r"/assets/editor-[^/]*\.js$"), lambda route: held.append(route))  # held
    register(page)
    new_session(page, "Slow editor")
    new_file(page, "early.txt")
    expect(page.get_by_role("button", name="Save")).to_be_visible()
    deadline = time.monotonic() + 15  # the view's effect requests the editor's code after paint
    while not held:
        assert time.monotonic() < deadline, "the editor's code was not requested when the file opened"
        page.wait_for_timeout(20)  # Playwright dispatches the held request's route event meanwhile
    expect(editor_text(page)).to_have_count(0)  # not loaded yet
    page.get_by_role("region", name="Editor").click()
    for route in held:
        route.continue_()
    expect(editor_text(page)).to_be_focused()
    page.keyboard.type("typed")
    expect(editor_text(page)).to_have_text("typed")


def test_terminal_ls_lists_the_sessions_file(page: Any, stack: Any) -> None:
    register(page)
    new_session(page, "Terminal ls")
    new_file(page, "listed-by-ls.txt")
    type_in_editor(page, "x")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved version")).to_be_visible()
    start_workspace(page)
    terminal = page.get_by_role("region", name="Terminal")
    terminal.locator(".xterm-screen").click()
    page.keyboard.type("ls\n")
    try:
        expect(terminal.locator(".xterm-rows")).to_contain_text("listed-by-ls.txt", timeout=20_000)
    finally:
        page.get_by_role("button", name="Stop workspace").click()


def test_conflict_when_the_file_changed_elsewhere(
    page: Any, stack: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(412)  # Chromium logs the 412 answer itself as a console error
    email = register(page)
    sid = new_session(page, "Conflicts")
    new_file(page, "notes.md")
    token = api_token(stack, email)
    auth = {"Authorization": f"Bearer {token}"}
    with stack.client() as http:
        check_envelope(
            http.put(f"/api/v5/sessions/{sid}/files/notes.md", content=b"theirs", headers=auth), 200
        )
    type_in_editor(page, "mine")
    page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert").filter(has_text="changed elsewhere")
    expect(alert).to_be_visible()
    # nothing of ours was written
    assert api_file(stack, token, sid, "notes.md").content == b"theirs"
    page.get_by_role("button", name="Reload theirs").click()
    expect(editor_text(page)).to_have_text("theirs")
    expect(alert).to_be_hidden()

    # again, this time keeping ours
    with stack.client() as http:
        check_envelope(
            http.put(f"/api/v5/sessions/{sid}/files/notes.md", content=b"theirs 2", headers=auth), 200
        )
    type_in_editor(page, " + mine")
    page.get_by_role("button", name="Save").click()
    expect(alert).to_be_visible()
    page.get_by_role("button", name="Overwrite with my version").click()
    expect(page.get_by_text("Saved version")).to_be_visible()
    assert api_file(stack, token, sid, "notes.md").content == b"theirs + mine"


def login_in_browser(page: Any, email: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="New session")).to_be_visible()


def test_log_out_ends_at_the_login_screen_and_clears_the_cookie(page: Any, stack: Any) -> None:
    email = register(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "coditect_refresh"]
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    login_in_browser(page, email)  # and logging in again works
    cookies = [c for c in page.context.cookies() if c["name"] == "coditect_refresh"]
    assert {c["path"] for c in cookies} == {"/api/v5/auth/refresh", "/api/v5/auth/logout"}
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert page.evaluate("document.cookie") == "", "the refresh token is invisible to scripts"


def test_refresh_token_reuse_ends_at_the_login_screen(
    page: Any, stack: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(401)  # the revoked session's answers
    register(page)
    stolen = next(c["value"] for c in page.context.cookies() if c["path"] == "/api/v5/auth/refresh")
    with stack.client() as http:
        mode = {"X-Coditect-Token-Mode": "cookie", "Origin": stack.url}

        def rotate(token: str) -> httpx.Response:
            http.cookies.clear()  # exactly the one cookie given, as a browser at that path sends it
            return http.post("/api/v5/auth/refresh", headers={**mode, "Cookie": f"coditect_refresh={token}"})

        first = rotate(stolen)
        check_envelope(first, 200)
        successor = first.cookies.get("coditect_refresh", path="/api/v5/auth/refresh")
        assert successor and successor != stolen
        check_envelope(rotate(successor), 200)
        # the stolen token again, now two generations old: reuse, the login session is revoked
        check_envelope(rotate(stolen), 401, "refresh_token_reused")
    page.get_by_role("link", name="Account").click()  # the next API call meets the revoked session
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.reload()  # and the browser's own refresh cookie is dead too
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_terminal_closed_4401_by_a_revoked_login_session_ends_at_the_login_screen(
    page: Any, stack: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(401)  # the revoked session's answers
    email = register(page)
    new_session(page, "Revoked")
    start_workspace(page)
    token = api_token(stack, email)  # a second login session, which revokes the browser's one
    auth = {"Authorization": f"Bearer {token}"}
    with stack.client() as http:
        listed = check_envelope(http.get("/api/v5/users/me/auth-sessions", headers=auth), 200)
        others = [s["id"] for s in listed["items"] if not s["current"]]
        assert len(others) == 1
        check_envelope(http.delete(f"/api/v5/users/me/auth-sessions/{others[0]}", headers=auth), 204)
    # no click: the relay closes the terminal with 4401 and the console goes to the login screen
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)
    with stack.client() as http:  # tidy: stop the workspace with the surviving session
        for ws in check_envelope(http.get("/api/v5/workspaces", headers=auth), 200)["items"]:
            if ws["status"] not in ("stopped", "failed", "stopping"):
                http.delete(f"/api/v5/workspaces/{ws['id']}", headers=auth)


def test_stopping_the_workspace_does_not_log_out(page: Any, stack: Any) -> None:
    """The relay also closes with 4401 when the workspace stops: the user stays signed in."""
    register(page)
    new_session(page, "Stop stays in")
    start_workspace(page)
    page.get_by_role("button", name="Stop workspace").click()
    expect(page.get_by_role("button", name="Start workspace")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Login sessions")).to_be_visible()


def test_files_folders_upload_move_versions_download_delete(page: Any, stack: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before a delete
    email = register(page)
    sid = new_session(page, "File operations")
    token = api_token(stack, email)

    def listing() -> list[str]:
        with stack.client() as http:
            data = check_envelope(
                http.get(
                    f"/api/v5/sessions/{sid}/files?recursive=true",
                    headers={"Authorization": f"Bearer {token}"},
                ),
                200,
            )
        return sorted(f["path"] for f in data["items"])

    page.get_by_role("button", name="New folder").click()
    page.get_by_label("Folder name").fill("docs")
    page.get_by_role("button", name="Create folder").click()
    page.get_by_role("treeitem", name="docs").click()
    page.get_by_label("Upload").set_input_files(
        files=[{"name": "up.txt", "mimeType": "text/plain", "buffer": b"<b>uploaded</b>"}]
    )
    expect(page.get_by_role("treeitem", name="up.txt")).to_be_visible()
    assert listing() == ["docs", "docs/up.txt"]
    page.get_by_role("treeitem", name="up.txt").click()
    # user content is text, never HTML
    expect(editor_text(page)).to_have_text("<b>uploaded</b>")
    assert page.get_by_role("region", name="Editor").locator("b").count() == 0
    type_in_editor(page, " v2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved version 2")).to_be_visible()
    page.get_by_text("Versions").click()
    page.get_by_role("button", name="Restore version 1").click()
    expect(editor_text(page)).to_have_text("<b>uploaded</b>")
    assert api_file(stack, token, sid, "docs/up.txt").content == b"<b>uploaded</b>"

    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "up.txt"
    assert Path(download.value.path()).read_bytes() == b"<b>uploaded</b>"

    page.get_by_role("button", name="Rename/move").click()
    page.get_by_label("New path").fill("moved.txt")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page.get_by_role("treeitem", name="moved.txt")).to_be_visible()
    assert listing() == ["docs", "moved.txt"]
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("treeitem", name="moved.txt")).to_be_hidden()
    assert listing() == ["docs"]


def test_session_rename_fork_archive_delete(page: Any, stack: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    register(page)
    new_session(page, "Original")
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New session name").fill("Renamed")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("heading", name="Renamed")).to_be_visible()
    page.get_by_role("button", name="Fork").click()
    expect(page.get_by_text("forked from")).to_be_visible()
    page.get_by_role("link", name="Renamed").click()  # related: the parent
    expect(page.get_by_text("Forks:")).to_be_visible()
    page.get_by_role("button", name="Archive").click()
    expect(page.get_by_text("archived", exact=True)).to_be_visible()
    page.get_by_role("link", name="Sessions", exact=True).first.click()
    expect(page.get_by_role("link", name="Renamed")).to_have_count(1)  # the fork; the archived one is hidden
    page.get_by_label("Show archived").check()
    expect(page.get_by_role("link", name="Renamed")).to_have_count(2)
    page.get_by_role("link", name="Renamed").first.click()
    page.get_by_role("button", name="Delete session").click()
    expect(page.get_by_role("button", name="New session")).to_be_visible()


def test_conversations_account_and_tenant_admin(page: Any, stack: Any) -> None:
    register(page)
    new_session(page, "Talk")
    page.get_by_role("tab", name="Conversations").click()
    page.get_by_label("Conversation title").fill("Plan")
    page.get_by_role("button", name="Start conversation").click()
    page.get_by_role("textbox", name="Message").fill("<script>alert(1)</script>")
    page.get_by_role("button", name="Post message").click()
    expect(page.get_by_text("<script>alert(1)</script>")).to_be_visible()  # shown as text
    page.get_by_role("link", name="Account").click()
    page.get_by_label("Display name").fill("Ada Renamed")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Ada Renamed · owner")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(PASSWORD + " and more")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed")).to_be_visible()
    page.get_by_role("link", name="Tenant").click()
    page.get_by_role("button", name="Create invite").click()
    expect(page.get_by_text(re.compile(r"Invite code \(member"))).to_be_visible()
    page.reload()
    expect(page.get_by_role("cell", name="invite_created")).to_be_visible()


def test_silent_refresh_before_the_access_token_expires(page: Any, stack: Any) -> None:
    page.clock.install()  # the page's timers under the test's control
    register(page)
    with page.expect_response(lambda r: r.url.endswith("/api/v5/auth/refresh")) as refreshed:
        page.clock.fast_forward("15:00")  # past expires_in - 60 s of the default 15 min token
    response = refreshed.value
    assert response.status == 200 and response.request.headers["x-coditect-token-mode"] == "cookie"
    assert "refresh_token" not in response.json()["data"]["tokens"]
    page.get_by_role("link", name="Account").click()  # the new access token works
    expect(page.get_by_role("heading", name="Login sessions")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
