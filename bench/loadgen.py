"""HTTP load: `wrk` when installed, else a small asyncio HTTP/1.1 keep-alive generator.

Both hold `connections` keep-alive connections open and send requests back to back for `seconds`
(with optional headers, e.g. Authorization, and a body). `run()` returns requests per second and
the latency p50/p95 of each request; `measure()` is its requests per second of a plain GET. Only
2xx answers count (the Python generator checks each status; wrk reports the others separately and
they are subtracted) and the others are returned as `errors`.

Requests cycle through `paths`: each connection (wrk: each of its two threads) takes its own share
of them in turn, like a user saving their own files. The load generator runs on the machine it
measures, so it should cost as little as possible: wrk is C on epoll.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

WRK_THREADS = 2

# Per wrk thread: its share of the paths, round robin; the body read once from a file (it may be
# 1 MiB); at the end, the latency percentiles (µs) and counts on one line `run()` parses.
_WRK_SCRIPT = """
local threads, counter = {}, 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local all = {}
  for line in io.lines(args[1]) do table.insert(all, line) end
  paths = {}
  for i = id + 1, #all, WRK_THREADS do table.insert(paths, all[i]) end
  if #paths == 0 then paths = all end
  body = nil
  if args[2] ~= "" then
    local f = io.open(args[2], "rb"); body = f:read("*a"); f:close()
  end
  n = 0
end
function request()
  n = n % #paths + 1
  return wrk.format(METHOD, paths[n], nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("LOADGEN %d %d %d %d %d\\n", latency:percentile(50), latency:percentile(95),
    summary.requests, summary.errors.status, summary.duration))
end
"""


@dataclass(frozen=True)
class Load:
    rps: float  # 2xx answers per second
    p50_ms: float
    p95_ms: float
    requests: int
    errors: int  # answers other than 2xx


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python-asyncio"


def measure(
    url: str, connections: int = 16, seconds: float = 10.0, headers: dict[str, str] | None = None
) -> float:
    """Requests per second of GET `url`, sending `headers` (e.g. Authorization) on every request."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return run(f"{parts.scheme}://{parts.netloc}", [path], connections=connections, seconds=seconds,
               headers=headers).rps  # fmt: skip


def run(
    base_url: str,
    paths: list[str],
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    connections: int = 16,
    seconds: float = 10.0,
) -> Load:
    """`method` requests to `base_url` + each of `paths` in turn, from `connections` connections."""
    mix = _Mix(base_url, paths, method, body, headers or {}, connections, seconds)
    return _wrk(mix) if tool() == "wrk" else asyncio.run(_python(mix))


@dataclass(frozen=True)
class _Mix:
    """What `run()` sends, for either generator."""

    base_url: str
    paths: list[str]
    method: str
    body: bytes
    headers: dict[str, str]
    connections: int
    seconds: float


def _wrk(mix: _Mix) -> Load:
    with tempfile.TemporaryDirectory(prefix="coditect-loadgen-") as tmp:
        script, path_list, body_file = Path(tmp, "load.lua"), Path(tmp, "paths"), Path(tmp, "body")
        script.write_text(
            _WRK_SCRIPT.replace("WRK_THREADS", str(WRK_THREADS)).replace("METHOD", f'"{mix.method}"')
        )
        path_list.write_text("\n".join(mix.paths) + "\n")
        body_file.write_bytes(mix.body)
        argv = ["wrk", f"-t{WRK_THREADS}", f"-c{mix.connections}", f"-d{max(1, round(mix.seconds))}s",
                "--timeout", "30s", "-s", str(script)]  # fmt: skip
        for name, value in mix.headers.items():
            argv += ["-H", f"{name}: {value}"]
        argv += [mix.base_url + "/", "--", str(path_list), str(body_file) if mix.body else ""]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors and int(errors.group(1)):
        raise RuntimeError(f"wrk could not connect: {out}")
    found = re.search(r"LOADGEN (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no summary: {out}")
    p50, p95, total, bad, micros = (int(g) for g in found.groups())
    return Load(rps=(total - bad) / (micros / 1e6), p50_ms=round(p50 / 1000, 2), p95_ms=round(p95 / 1000, 2),
                requests=total, errors=bad)  # fmt: skip


async def _python(mix: _Mix) -> Load:
    parts, body = urlsplit(mix.base_url), mix.body
    extra = "".join(f"{k}: {v}\r\n" for k, v in mix.headers.items())
    length = f"Content-Length: {len(body)}\r\n" if body or mix.method in ("PUT", "POST") else ""
    deadline = time.perf_counter() + mix.seconds
    latencies: list[float] = []
    counts = [0, 0]  # 2xx, other

    async def worker(i: int) -> None:
        mine = mix.paths[i % len(mix.paths) :: mix.connections] or mix.paths
        heads = [
            f"{mix.method} {p} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}{length}\r\n".encode() for p in mine
        ]
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(heads[n % len(heads)] + body)
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            size = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(size.group(1)) if size else 0)
            latencies.append(time.perf_counter() - started)
            counts[0 if 200 <= status < 300 else 1] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(mix.connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return Load(rps=counts[0] / elapsed, p50_ms=at(0.50), p95_ms=at(0.95), requests=len(ordered),
                errors=counts[1])  # fmt: skip
