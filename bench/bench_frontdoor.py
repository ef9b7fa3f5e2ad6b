"""Front door benchmark: the local stack's Caddy in front of the functions, against baselines.

    python bench/bench_frontdoor.py --out bench/results/frontdoor.json

Starts one real local stack (`python -m coditect.devstack serve`, temp data dir, free ports) and,
next to it, a hello-world functions-framework function (bench/hello/main.py, same command line
and THREADS as the health function). Rounds alternate baseline / subject so both see the same
machine load; ratios are medians of the per-round ratios.

1. `GET /api/v5/health` through the front door vs hello-world direct, 16 connections (goal ≥ 0.8).
   Also the proxy's own share: health through the front door vs the health function direct
   (the goal compounds the function's own cost, which the proxy cannot remove).
2. Authenticated `GET /api/v5/users/me` through the front door vs hello-world (goal ≥ 0.6).
3. One keep-alive client, `GET /api/v5/health` back to back: p50 through the front door (goal
   ≤ 2 ms), against the same client straight to the health function.
4. 100 connections sending a login body one byte per second are open: a login from another client
   must answer normally; its latency is compared with logins without them.

The machine is shared (other sessions run at the same time): runs are kept short, and each figure
is only meaningful against the baseline measured beside it.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from coditect import registry
from coditect.devstack.plan import Planned, StackSettings, free_port
from coditect.registry.spec import FunctionSpec, Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # bench/ is not a package
from accounts import register  # bench/ is not a package
from run import arguments, publish  # bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "bench" / "hello" / "main.py"


def wait_until(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


def start_stack(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(
        os.environ, CODITECT_DATA_DIR=str(data_dir), CODITECT_PORT=str(port), CODITECT_HOST="127.0.0.1"
    )
    env.pop("CODITECT_STORE", None)
    with (data_dir.parent / "stack.out").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "coditect.devstack", "serve"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(url + "/api/v5/health")
    return proc, url


def start_hello(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """hello-world exactly as the stack starts the health function (same runtime settings)."""
    health = registry.function("health")
    spec = FunctionSpec("hello", routes=(Route("hello.get", "GET", "/"),), concurrency=health.concurrency)
    planned = Planned(spec, HELLO, free_port())
    env = planned.env(StackSettings(root=ROOT, data_dir=data_dir), "http://127.0.0.1:9/", dict(os.environ))
    with (data_dir.parent / "hello.out").open("wb") as out:
        proc = subprocess.Popen(planned.argv(), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    wait_until(planned.url + "/")
    return proc, planned.url + "/"


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def alternate(
    baseline: str, subject: str, rounds: int, seconds: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"baseline": [], "subject": []}
    loadgen.measure(baseline, 16, 1)
    loadgen.measure(subject, 16, 1, headers)  # warm-up: connections and first requests
    for _ in range(rounds):
        runs["baseline"].append(round(loadgen.measure(baseline, 16, seconds), 1))
        runs["subject"].append(round(loadgen.measure(subject, 16, seconds, headers), 1))
    ratios = [s / b for s, b in zip(runs["subject"], runs["baseline"], strict=True)]
    return {"runs": runs, "baseline_rps": statistics.median(runs["baseline"]),
            "subject_rps": statistics.median(runs["subject"]), "round_ratios": [round(r, 3) for r in ratios],
            "ratio": round(statistics.median(ratios), 3)}  # fmt: skip


def keepalive_latency(url: str, requests: int) -> dict[str, float]:
    """One client, one keep-alive connection, requests back to back: latency percentiles (ms)."""
    host = url.split("//", 1)[1].split("/", 1)[0]
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=10)
    times = []
    try:
        for i in range(requests + 20):
            started = time.perf_counter()
            conn.request("GET", path)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
            if i >= 20:  # warm-up
                times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 3), "p95_ms": round(times[int(len(times) * 0.95)], 3)}


def login_ms(url: str, email: str, password: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = httpx.post(url + "/api/v5/auth/login", json={"email": email, "password": password}, timeout=60)
    return (time.perf_counter() - started) * 1000, answer.status_code


def slow_clients(url: str, count: int, logins: int, email: str, password: str) -> dict[str, Any]:
    before = [login_ms(url, email, password) for _ in range(logins)]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    socks = []
    head = b"POST /api/v5/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(head + b"{")
            socks.append(sock)
        time.sleep(1.0)
        for sock in socks:  # one more byte each: they are trickling, not idle
            sock.sendall(b" ")
        during = [login_ms(url, email, password) for _ in range(logins)]
    finally:
        for sock in socks:
            sock.close()
    return {"slow_connections": count, "statuses": [s for _, s in during],
            "baseline_ms": round(statistics.median(t for t, _ in before), 1),
            "during_ms": round(statistics.median(t for t, _ in during), 1),
            "answers_normally": all(s == 200 for _, s in during)}  # fmt: skip


def markdown(r: dict[str, Any]) -> str:
    ok = lambda passed: "✅" if passed else "❌"  # noqa: E731
    h, p, u, k, s = r["health"], r["proxy_cost"], r["users_me"], r["keepalive"], r["slow"]
    return "\n".join([
        f"Load tool: **{r['tool']}**, 16 connections, {r['seconds']:.0f} s per run, {r['rounds']} alternating "
        f"rounds (ratio = median of per-round ratios). Machine: {r['machine']}; **shared with other "
        "sessions running at the same time** (1-minute load average at start / end: "
        f"{r['load_average'][0]} / {r['load_average'][1]}), so runs are short and only the ratios against "
        "the baseline measured beside them mean anything; above a load of ~2 per core they are noise.",
        "",
        "| measure | subject | baseline (same run) | ratio / figure | goal |",
        "|---|---|---|---|---|",
        f"| `GET /api/v5/health` through the front door vs hello-world direct | {h['subject_rps']:.0f} req/s | "
        f"{h['baseline_rps']:.0f} req/s | **{h['ratio']:.2f}** {ok(h['ratio'] >= 0.8)} | ≥ 0.8 |",
        f"| (the proxy's share) health through the front door vs the health function direct | "
        f"{p['subject_rps']:.0f} req/s | {p['baseline_rps']:.0f} req/s | {p['ratio']:.2f} | — |",
        f"| authenticated `GET /api/v5/users/me` through the front door vs hello-world | "
        f"{u['subject_rps']:.0f} req/s | {u['baseline_rps']:.0f} req/s | **{u['ratio']:.2f}** "
        f"{ok(u['ratio'] >= 0.6)} | ≥ 0.6 |",
        f"| one keep-alive client, health p50 through the front door | {k['frontdoor']['p50_ms']:.2f} ms "
        f"(p95 {k['frontdoor']['p95_ms']:.2f}) | {k['direct']['p50_ms']:.2f} ms direct | **{k['frontdoor']['p50_ms']:.2f} "
        f"ms** {ok(k['frontdoor']['p50_ms'] <= 2)} | ≤ 2 ms |",
        f"| a login while {s['slow_connections']} slow-body connections are open | {s['during_ms']:.0f} ms, "
        f"statuses {sorted(set(s['statuses']))} | {s['baseline_ms']:.0f} ms without them | "
        f"**{'answers' if s['answers_normally'] else 'blocked'}** {ok(s['answers_normally'])} | answers normally |",
    ])  # fmt: skip


def main() -> None:
    parser = arguments(__doc__, "frontdoor")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per comparison")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="coditect-bench-frontdoor-") as tmp:
        data_dir = Path(tmp) / "data"
        stack, url = start_stack(data_dir)
        hello, hello_url = start_hello(data_dir)
        try:
            account = register(url)
            email, password, auth = account.email, account.password, account.headers
            direct = json.loads((data_dir / "devstack.json").read_text())["functions"]["health"]["url"]
            health = alternate(hello_url, url + "/api/v5/health", args.rounds, args.seconds)
            proxy = alternate(direct + "/api/v5/health", url + "/api/v5/health", args.rounds, args.seconds)
            users = alternate(hello_url, url + "/api/v5/users/me", args.rounds, args.seconds, auth)
            keepalive = {"frontdoor": keepalive_latency(url + "/api/v5/health", 300),
                         "direct": keepalive_latency(direct + "/api/v5/health", 300)}  # fmt: skip
            slow = slow_clients(url, 100, 2, email, password)
        finally:
            stop(hello)
            stop(stack)
    result: dict[str, Any] = {
        "area": "frontdoor",
        "title": "Front door (Caddy) vs hello-world and the functions direct",
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}",
        "tool": loadgen.tool(), "seconds": args.seconds, "rounds": args.rounds,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "health": health, "proxy_cost": proxy, "users_me": users, "keepalive": keepalive, "slow": slow,
    }  # fmt: skip
    result["markdown"] = markdown(result)
    publish(args.out, result)


if __name__ == "__main__":
    main()
