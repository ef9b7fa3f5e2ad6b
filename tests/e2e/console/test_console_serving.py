"""The console through the front door: `/` with its security headers, hashed assets immutable and
compressed, unknown assets a 404 envelope (real stack, real gateway)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.console.conftest import DIST
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e


def test_index_and_assets_through_the_gateway(stack: Any) -> None:
    if not DIST.is_file():
        pytest.fail("the console is not built: run `nox -s console`")
    with stack.client() as http:
        index = http.get("/")
        assert index.status_code == 200 and index.headers["Content-Type"].startswith("text/html")
        assert index.headers["Cache-Control"] == "no-cache"
        csp = index.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        assert index.headers["Referrer-Policy"] == "no-referrer"
        assert index.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>" not in index.text, "no inline script"
        scripts = re.findall(r'src="(/assets/[^"]+\.js)"', index.text)
        assert scripts, index.text
        for coding in ("br", "gzip"):
            asset = http.get(scripts[0], headers={"Accept-Encoding": coding})
            assert asset.status_code == 200 and asset.headers["Content-Encoding"] == coding
            assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            on_disk = DIST.parent / scripts[0].lstrip("/")
            # httpx decodes gzip (and br only when a brotli module is installed)
            twin = on_disk.with_name(on_disk.name + ".br").read_bytes()
            assert asset.content == on_disk.read_bytes() or (coding == "br" and asset.content == twin)
        cached = http.get(scripts[0], headers={"If-None-Match": asset.headers["ETag"]})
        assert cached.status_code == 304
        check_envelope(http.get("/assets/nope-123.js"), 404, "not_found")
        check_envelope(http.get("/assets/../main.py"), 404)
        check_envelope(http.post("/", content=b""), 405, "method_not_allowed")
