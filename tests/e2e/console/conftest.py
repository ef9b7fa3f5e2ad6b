"""Browser fixtures for the web console: Playwright for Python driving Debian's chromium (its own
browser download is not reachable), on the shared `stack`.

`page` fails its test on any console error, uncaught page error or CSP violation, except network
errors for HTTP statuses the test declares expected (`browser_errors.expect(401)`): Chromium
logs every 4xx answer of a fetch as a console error, and some tests provoke exactly those.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DIST = Path(__file__).resolve().parents[3] / "functions" / "console" / "dist" / "index.html"
_STATUS = re.compile(r"the server responded with a status of (\d{3})")
# Reported by the page itself as console errors: the CSP event carries what was blocked.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""


class BrowserErrors:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: set[int] = set()

    def expect(self, *statuses: int) -> None:
        self.expected.update(statuses)

    def console(self, message: Any) -> None:
        if message.type != "error":
            return
        status = _STATUS.search(message.text)
        if status and int(status.group(1)) in self.expected:
            return
        self.errors.append(f"console error: {message.text} at {message.location}")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"page error: {error}")


# Module scope, not session: Playwright's sync API keeps an asyncio event loop running on the main
# thread while it lives, and later tests of the session (the relay's, the front door's) call
# asyncio.run, which refuses to start inside a running loop.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    if not DIST.is_file():
        pytest.fail("the console is not built: run `nox -s console` (nox -s tests builds it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def page(browser: Any, stack: Any, browser_errors: BrowserErrors) -> Iterator[Any]:
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    context.add_init_script(_CSP_LISTENER)
    page = context.new_page()
    page.on("console", browser_errors.console)
    page.on("pageerror", browser_errors.page_error)
    yield page
    context.close()
    assert not browser_errors.errors, "\n".join(browser_errors.errors)
