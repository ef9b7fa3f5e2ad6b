"""HTTP load: `wrk` when installed, else a small asyncio HTTP/1.1 keep-alive generator.

Both hold `connections` keep-alive connections open and send GETs (with optional headers, e.g.
Authorization) back to back for `seconds`;
`measure()` returns requests per second and the name of the tool used. Only 2xx answers count
(the Python generator checks each status; wrk reports non-2xx separately and they are subtracted).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from urllib.parse import urlsplit


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python-asyncio"


def measure(
    url: str, connections: int = 16, seconds: float = 10.0, headers: dict[str, str] | None = None
) -> float:
    """Requests per second of GET `url`, sending `headers` (e.g. Authorization) on every request."""
    if tool() == "wrk":
        return _wrk(url, connections, seconds, headers or {})
    return asyncio.run(_python(url, connections, seconds, headers or {}))


def _wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> float:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    duration = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors and int(errors.group(1)):
        raise RuntimeError(f"wrk could not connect: {out}")
    return (total - (int(bad.group(1)) if bad else 0)) / duration


async def _python(url: str, connections: int, seconds: float, headers: dict[str, str]) -> float:
    parts = urlsplit(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            if 200 <= status < 300:
                counts[i] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)
