"""A built single-page site served from memory: `index.html` plus content-hashed assets.

Built for the web console (functions/console): the build (`nox -s console`) writes
`dist/index.html` and `dist/assets/<name>-<hash>.<ext>`, each asset also precompressed as `.br`
and `.gz`. Everything is read once at first use; only the files found then can ever be served
(no path from a request touches the file system).

- assets: `Cache-Control: public, max-age=31536000, immutable` (the name changes with the bytes),
  a strong ETag, the brotli or gzip twin when the client accepts it (`Vary: Accept-Encoding`);
- `index.html`: `no-cache` (revalidated each load, so a new build shows at once), the strict
  Content-Security-Policy and the other security headers of `PAGE_HEADERS`.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from flask import Request, Response

from coditect.errors import ApiError, NotFound

IMMUTABLE = "public, max-age=31536000, immutable"
# No inline script and no eval; styles may be injected by the editor and terminal components
# (CodeMirror's and xterm.js's runtime <style> elements), never by user content, which is only
# ever put in the DOM as text. 'self' in connect-src covers ws:/wss: of the same host (CSP 3).
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


class NotBuilt(ApiError):
    status = 503
    default_code = "console_not_built"
    default_message = "The console is not built: run `nox -s console`."


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    encoded: dict[str, bytes] = field(default_factory=dict)  # "br"/"gzip" -> bytes


def _load(path: Path) -> Asset:
    body = path.read_bytes()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
        ctype += "; charset=utf-8"
    encoded = {}
    for coding, suffix in _ENCODINGS:
        twin = path.with_name(path.name + suffix)
        if twin.is_file():
            encoded[coding] = twin.read_bytes()
    return Asset(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', encoded)


class Site:
    """The files of one built site (`root` = the dist directory), loaded at first request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: Asset | None = None
        self._assets: dict[str, Asset] = {}

    def _ensure(self) -> Asset:
        if self._index is None:
            index = self.root / "index.html"
            if not index.is_file():
                raise NotBuilt()
            assets = self.root / "assets"
            if assets.is_dir():
                for path in sorted(assets.rglob("*")):
                    if path.is_file() and path.suffix not in (".br", ".gz"):
                        self._assets[path.relative_to(assets).as_posix()] = _load(path)
            self._index = _load(index)
        return self._index

    def index(self, request: Request) -> Response:
        response = _answer(request, self._ensure(), "no-cache")
        for name, value in PAGE_HEADERS.items():
            response.headers[name] = value
        return response

    def asset(self, request: Request, name: str) -> Response:
        self._ensure()
        found = self._assets.get(name)
        if found is None:
            raise NotFound("No such asset.")
        return _answer(request, found, IMMUTABLE)


def _accepts(request: Request, coding: str) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == coding:
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _answer(request: Request, asset: Asset, cache: str) -> Response:
    headers = {
        "Cache-Control": cache,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in request.headers.get("If-None-Match", ""):
        return Response(status=304, headers=headers)
    body = asset.body
    for coding, _ in _ENCODINGS:
        if coding in asset.encoded and _accepts(request, coding):
            body, headers["Content-Encoding"] = asset.encoded[coding], coding
            break
    response = Response(body if request.method != "HEAD" else b"", status=200, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    response.headers["Content-Length"] = str(len(body))
    return response
