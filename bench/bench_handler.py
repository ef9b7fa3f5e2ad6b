"""Handler time: each function's own logged latency (`latency_ms` of its JSON request line).

    python bench/bench_handler.py [--out bench/results/handler.json] [--requests 300] [--base-url URL]

Starts the register, users, sessions and health functions as real processes (bench_runtime's
`Bench`: functions-framework → gunicorn, THREADS = the spec's concurrency), registers a user and
creates a session, then sends `--requests` keep-alive requests, one at a time, to
`GET /api/v5/health`, `GET /api/v5/users/me` and `GET /api/v5/sessions/{id}`. The figure is the
p50/p95 of the `latency_ms` each function logged for those requests (the time inside the
function: routing, auth, store reads, envelope; not the HTTP server or the network). Goal: p95 <
1 ms (the seed's "API response < 1 ms"). Baseline in the same run: the client-side round trip of
hello-world's `GET /` and of each route (what the HTTP stack adds around the handler).

`--base-url` sends the measured requests there instead (e.g. the front door,
`http://127.0.0.1:8080`); the handler times are still read from the function logs of this run,
so the front door must route to these processes — without it, requests go straight to them.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import Bench  # bench/ is not a package
from run import arguments, publish  # bench/ is not a package

PASSWORD = "quartz-lantern-meadow-7319"
GOAL_MS = 1.0


def connect(url: str) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)


def call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw.startswith(b"{") else raw


def timed(url: str, path: str, headers: dict[str, str], n: int) -> list[float]:
    conn = connect(url)
    out = []
    for _ in range(n):
        started = time.perf_counter()
        status, _ = call(conn, "GET", path, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        assert status == 200, (path, status)
    conn.close()
    return out


def logged_latencies(log: Path, method: str) -> list[float]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        fields = record.get("fields", record)
        if "latency_ms" in fields and fields.get("method") == method and fields.get("status") == 200:
            out.append(float(fields["latency_ms"]))
    return out


def pct(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"n": len(values), "p50_ms": round(q[49], 3), "p95_ms": round(q[94], 3)}


def main() -> int:
    parser = arguments(__doc__, "handler")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--base-url", default=None, help="send the measured requests here (a front door)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coditect-bench-handler-") as tmp:
        bench = Bench(Path(tmp))
        try:
            ports = bench.serve(("register", "users", "sessions", "health"))
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            status, body = call(connect(urls["register"]), "POST", "/api/v5/auth/register",
                                {"email": "bench-handler@example.test", "password": PASSWORD, "name": "Bench"})  # fmt: skip
            assert status == 201, body
            auth = {"Authorization": "Bearer " + body["data"]["tokens"]["access_token"]}
            status, body = call(
                connect(urls["sessions"]), "POST", "/api/v5/sessions", {"name": "bench"}, auth
            )
            assert status == 201, body
            routes = {"health": ("/api/v5/health", {}), "users": ("/api/v5/users/me", auth),
                      "sessions": (f"/api/v5/sessions/{body['data']['id']}", auth)}  # fmt: skip
            marks = {name: (bench.logs / f"{name}.log").stat().st_size for name in routes}
            client: dict[str, Any] = {"hello": pct(timed(urls["hello"], "/", {}, args.requests))}
            for name, (path, headers) in routes.items():
                timed(args.base_url or urls[name], path, headers, 20)  # warm-up (also logged: skipped below)
                marks[name] = (bench.logs / f"{name}.log").stat().st_size
                client[name] = pct(timed(args.base_url or urls[name], path, headers, args.requests))
            time.sleep(0.2)  # let the last log lines land
            handler = {}
            for name in routes:
                log = bench.logs / f"{name}.log"
                with log.open("rb") as f:
                    f.seek(marks[name])
                    tail = Path(tmp) / f"{name}.tail"
                    tail.write_bytes(f.read())
                handler[name] = pct(logged_latencies(tail, "GET"))
        finally:
            bench.stop()
    lines = [
        f"Handler time = the function's own `latency_ms` log field, {args.requests} sequential keep-alive requests "
        f"per route{' through ' + args.base_url if args.base_url else ' straight to each function'}. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end (other work may share the CPUs).",
        "",
        "| route | handler p50 (ms) | handler p95 (ms) (goal < 1) | client round trip p50 / p95 (ms) |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "health": "GET /api/v5/health",
        "users": "GET /api/v5/users/me",
        "sessions": "GET /api/v5/sessions/{id}",
    }
    for name, label in labels.items():
        h, c = handler[name], client[name]
        flag = "✅" if h["p95_ms"] < GOAL_MS else "❌"
        lines.append(f"| {label} | {h['p50_ms']} | {h['p95_ms']} {flag} | {c['p50_ms']} / {c['p95_ms']} |")
    c = client["hello"]
    lines.append(f"| *hello-world `GET /` (baseline, no handler log)* | | | {c['p50_ms']} / {c['p95_ms']} |")
    report = {"title": "Handler time (the functions' own logged latency) for health, users/me, session get",
              "requests": args.requests, "base_url": args.base_url, "handler": handler, "client": client,
              "goal_p95_ms": GOAL_MS, "markdown": "\n".join(lines)}  # fmt: skip
    publish(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
