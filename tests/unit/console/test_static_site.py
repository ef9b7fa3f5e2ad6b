"""coditect.http.static: what the console function serves and with which headers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from flask import Flask

from coditect.errors import NotFound
from coditect.http.static import CSP, IMMUTABLE, NotBuilt, Site

APP = Flask(__name__)
JS = b"console.log('x');" * 50


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets" / "sub").mkdir(parents=True)
    (tmp_path / "index.html").write_text('<script type="module" src="/assets/index-abc.js"></script>')
    (tmp_path / "assets" / "index-abc.js").write_bytes(JS)
    (tmp_path / "assets" / "index-abc.js.gz").write_bytes(gzip.compress(JS))
    (tmp_path / "assets" / "index-abc.js.br").write_bytes(b"BROTLI")
    (tmp_path / "assets" / "sub" / "x-1.css").write_bytes(b"a{}")
    return tmp_path


def get(site: Site, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    with APP.test_request_context(path, headers=headers):
        from flask import request

        if path == "/":
            response = site.index(request)
        else:
            response = site.asset(request, path.removeprefix("/assets/"))
        return response.status_code, dict(response.headers), response.get_data()


def test_index_is_revalidated_and_carries_the_security_headers(dist: Path) -> None:
    status, headers, body = get(Site(dist), "/")
    assert status == 200 and body.startswith(b"<script")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "default-src 'none'", "base-uri 'none'"):
        assert directive in CSP
    assert "unsafe-eval" not in CSP and "script-src 'self';" in CSP + ";"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_assets_are_immutable_and_precompressed_when_accepted(dist: Path) -> None:
    site = Site(dist)
    status, headers, body = get(site, "/assets/index-abc.js")
    assert (status, body) == (200, JS) and "Content-Encoding" not in headers
    assert headers["Cache-Control"] == IMMUTABLE and headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    _, gz_headers, gz_body = get(site, "/assets/index-abc.js", **{"Accept-Encoding": "gzip, deflate"})
    assert gz_headers["Content-Encoding"] == "gzip" and gzip.decompress(gz_body) == JS
    assert gz_headers["Content-Length"] == str(len(gz_body))
    _, br_headers, br_body = get(site, "/assets/index-abc.js", **{"Accept-Encoding": "gzip, br"})
    assert br_headers["Content-Encoding"] == "br" and br_body == b"BROTLI"
    _, refused, _ = get(site, "/assets/index-abc.js", **{"Accept-Encoding": "br;q=0, gzip"})
    assert refused["Content-Encoding"] == "gzip"
    assert get(site, "/assets/sub/x-1.css")[0] == 200
    # a conditional request with the ETag: 304, no body
    status, _, body = get(site, "/assets/index-abc.js", **{"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


@pytest.mark.parametrize(
    "name", ["missing.js", "index-abc.js.gz", "../index.html", "sub/../index-abc.js", "/etc/passwd", "sub"]
)
def test_only_files_found_at_load_are_served(dist: Path, name: str) -> None:
    with pytest.raises(NotFound):
        get(Site(dist), f"/assets/{name}")


def test_not_built_answers_503(tmp_path: Path) -> None:
    with pytest.raises(NotBuilt) as info:
        get(Site(tmp_path / "nothing"), "/")
    assert info.value.status == 503 and info.value.code == "console_not_built"
