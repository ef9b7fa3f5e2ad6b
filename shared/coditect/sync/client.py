"""The files API as the agent uses it: only session SID's files routes and the report route.

Every call carries `Authorization: Bearer <credential>` (an opaque workspace credential; the
agent does not look inside). Failures are sorted into what the caller does next:

    Unreachable   connection refused/reset, timeout, 5xx other than 507 → retry with backoff
    ApiFailure    any other error answer, with its status and the envelope's `code`

The executable bit rides in the file's content type as the parameter `x-coditect-exec=1`
(the files API has no mode field; a media type parameter is legal RFC 9110 syntax that any
client ignores, and the store keeps the content type with each version).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

EXEC_PARAM = "x-coditect-exec=1"
DEFAULT_TYPE = "application/octet-stream"
UPLOAD_BLOCK = 1024 * 1024
IN_MEMORY_UPLOAD = 4 * 1024 * 1024
LIST_PAGE = 200
FEED_PAGE = 1000
DOWNLOAD_THREADS = 8  # = hydrate.DOWNLOADS_IN_PARALLEL: the bound on parallel downloads


class Unreachable(Exception):
    """The API could not be reached or answered 5xx (not 507): try again later."""


class ApiFailure(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code = status, code


def split_type(content_type: str | None) -> tuple[str | None, bool]:
    """(content type without the exec parameter, executable?)."""
    if not content_type:
        return None, False
    parts = [p.strip() for p in content_type.split(";")]
    executable = EXEC_PARAM in parts
    kept = [p for p in parts if p and p != EXEC_PARAM]
    return ("; ".join(kept) or None), executable


def join_type(base: str | None, executable: bool) -> str:
    base = base or DEFAULT_TYPE
    return f"{base}; {EXEC_PARAM}" if executable else base


def _url_path(rel: str) -> str:
    return "/".join(quote(segment, safe="") for segment in rel.split("/"))


def _failure(response: httpx.Response) -> Exception:
    status = response.status_code
    if status >= 500 and status != 507:
        return Unreachable(f"HTTP {status}")
    code = "unknown"
    try:
        code = str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        pass
    return ApiFailure(status, code)


class Api:
    def __init__(self, api_url: str, session_id: str, workspace_id: str, credential: str) -> None:
        self.base = f"/api/v5/sessions/{session_id}/files"
        self.report_path = f"/api/v5/workspaces/{workspace_id}/sync"
        timeout = httpx.Timeout(60.0, connect=5.0)
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=timeout,
            limits=limits,
        )
        self.blocking = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=timeout,
            limits=limits,
        )
        self.pool = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="download")

    async def aclose(self) -> None:
        await self.http.aclose()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.blocking.close()

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                # A kept-alive connection the server closed as we reused it: once more, fresh.
                response = await self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(type(exc).__name__) from None
        if response.status_code >= 400:
            raise _failure(response)
        return response

    async def _data(self, method: str, url: str, **kwargs: Any) -> Any:
        return (await self._call(method, url, **kwargs)).json()["data"]

    # -- reading -----------------------------------------------------------------------------
    async def listing(self, prefix: str = "") -> AsyncIterator[dict[str, Any]]:
        """Every entry under `prefix` (recursive), page by page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"prefix": prefix, "recursive": "true", "limit": LIST_PAGE}
            if cursor:
                params["cursor"] = cursor
            data = await self._data("GET", self.base, params=params)
            for item in data["items"]:
                yield item
            cursor = data.get("next_cursor")
            if not cursor:
                return

    async def changes(self, since: str | None, wait: float = 0.0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": FEED_PAGE, "wait": wait}
        if since:
            params["since"] = since
        timeout = httpx.Timeout(wait + 30.0, connect=5.0)
        data: dict[str, Any] = await self._data("GET", self.base + ":changes", params=params, timeout=timeout)
        return data

    async def download(self, rel: str, tmp: Path, known: dict[str, Any] | None = None) -> dict[str, Any]:
        """Stream the current version of `rel` into `tmp`; its etag, version, content type, sha256.

        `known`: the listing's `file` for it. When the answer's ETag is that one, its sha256 is
        the listing's and the bytes are not hashed again (hydration's CPU goes to the network).
        Runs on a worker thread with a blocking client: httpx's blocking reads release the GIL
        around the socket, which measured ~25 % faster than its asyncio client for many parallel
        downloads (bench/bench_sync.py)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._download, rel, tmp, known)

    def _download(self, rel: str, tmp: Path, known: dict[str, Any] | None) -> dict[str, Any]:
        digest = hashlib.sha256()
        try:
            with self.blocking.stream("GET", f"{self.base}/{_url_path(rel)}") as response:
                if response.status_code >= 400:
                    response.read()
                    raise _failure(response)
                headers = response.headers
                etag = headers.get("ETag", "").strip('"') or None
                trusted = known is not None and etag is not None and known.get("etag") == etag
                with tmp.open("wb") as out:
                    for block in response.iter_bytes():
                        if not trusted:
                            digest.update(block)
                        out.write(block)
        except httpx.TransportError as exc:
            raise Unreachable(type(exc).__name__) from None
        sha = str(known["sha256"]) if trusted and known is not None else digest.hexdigest()
        return {"etag": etag, "version": int(headers.get("X-File-Version") or 0),
                "content_type": headers.get("Content-Type"), "sha256": sha}  # fmt: skip

    # -- writing -----------------------------------------------------------------------------
    async def put(
        self, rel: str, source: Path, size: int, content_type: str, if_match: str | None
    ) -> dict[str, Any]:
        """Write `source` as the next version of `rel`: If-Match `if_match`, or If-None-Match: *
        when None (the file must be new)."""
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        else:
            headers["If-None-Match"] = "*"
        body: bytes | AsyncIterator[bytes]
        if size <= IN_MEMORY_UPLOAD:
            body = source.read_bytes()[:size]
            headers["Content-Length"] = str(len(body))
        else:
            body = _blocks(source, size)
        data: dict[str, Any] = await self._data(
            "PUT", f"{self.base}/{_url_path(rel)}", content=body, headers=headers
        )
        return data

    async def delete(self, rel: str, *, recursive: bool, if_match: str | None) -> None:
        headers = {"If-Match": f'"{if_match}"'} if if_match else {}
        params = {"recursive": "true"} if recursive else {}
        await self._call("DELETE", f"{self.base}/{_url_path(rel)}", params=params, headers=headers)

    async def move(self, src: str, dst: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._data("POST", self.base + ":move", json={"from": src, "to": dst})
        return data

    async def mkdir(self, rel: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._data("POST", self.base + ":mkdir", json={"path": rel})
        return data

    async def current(self, rel: str) -> dict[str, Any] | None:
        """The `file` at `rel` when it is a file, else None (missing or a directory)."""
        try:
            data = await self._data("GET", self.base, params={"prefix": rel, "limit": 1})
        except ApiFailure as exc:
            if exc.status == 404:
                return None
            raise
        items: list[dict[str, Any]] = data["items"]
        return items[0] if items and items[0]["path"] == rel and items[0]["type"] == "file" else None

    async def report(self, body: dict[str, Any]) -> None:
        await self._call("PUT", self.report_path, json=body)


async def _blocks(source: Path, size: int) -> AsyncIterator[bytes]:
    """At most `size` bytes of `source` (the Content-Length sent); a shorter file ends early and
    the server refuses the write (400 incomplete_body): the path stays pending and is retried."""
    left = size
    with source.open("rb") as f:
        while left > 0:
            block = f.read(min(UPLOAD_BLOCK, left))
            if not block:
                return
            left -= len(block)
            yield block
