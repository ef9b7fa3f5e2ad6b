"""Workspaces benchmark: allocate → ready with the local provisioner, p50/p95.

    python bench/bench_workspaces.py --out bench/results/workspaces.json [--runs 20]

Platform path (in-process, as the functional tests drive it, built by functions-framework's
create_app exactly as in production): POST /api/v5/workspaces on workspace-allocate (auth, session
check, limits, rate limit, record + outbox, CloudEvent published over real HTTP to a local sink),
the recorded event delivered to the provisioner function (dedupe, requested → provisioning, a real
workspace process started by LocalProvisioner, /healthz polled, → ready, ready event published),
then GET /api/v5/workspaces/{id} reads `ready`. Timed from the POST until that GET.

Baseline, same run, same machine, alternating with the platform path: `LocalProvisioner.start`
alone (spawn the workspace program, poll /healthz) — the floor any allocation path pays. The
ratio platform/baseline is the platform's overhead. Each workspace is stopped after its run,
outside the timing. The Broker's hop is not included (the local broker adds one HTTP POST). Both
paths start the sync agent's offline test double beside the program (no files API runs here), so
the agent's hydration is not measured here; bench_sync.py measures it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from run import arguments, publish  # bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]


def start_sink() -> tuple[ThreadingHTTPServer, list[tuple[dict[str, str], bytes]]]:
    """A loopback HTTP server standing in for the Broker's ingress; records binary CloudEvents."""
    events: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            events.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, events


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = arguments(__doc__, "workspaces")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-ws-")
    data_dir = Path(tmp) / "data"
    data_dir.mkdir()
    sink, events = start_sink()
    os.environ.update(
        CODITECT_DATA_DIR=str(data_dir),
        K_SINK=f"http://127.0.0.1:{sink.server_port}/",
        CODITECT_LOG_LEVEL="WARNING",
        # Test-only Argon2 cost for the one registration; allocation limits out of the way.
        CODITECT_ARGON2_MEMORY_KIB="8",
        CODITECT_ARGON2_TIME_COST="1",
        CODITECT_ARGON2_WEAK_PARAMS_FOR_TESTS="true",
        CODITECT_WORKSPACE_ALLOCATE_PER_MINUTE="1000",
        # The functions run in-process, so there is no files API for a workspace's sync agent to
        # hydrate from: both paths start the agent's offline test double (as the functional tests
        # do), and a workspace is ready when its program answers. Without it every start ends
        # `failed`/`start_timeout`.
        CODITECT_WORKSPACE_SYNC_COMMAND=json.dumps(
            [sys.executable, str(ROOT / "tests" / "fakes" / "sync_agent_double.py"), "--offline"]
        ),
    )
    os.environ.pop("CODITECT_STORE", None)
    os.environ.pop("CODITECT_KEYS_DIR", None)

    from functions_framework import create_app

    from coditect.config import get_settings
    from coditect.identity.signing_keys import ensure_keys
    from coditect.workspaces.local import LocalProvisioner
    from coditect.workspaces.provisioner import WorkspaceSpec

    get_settings.cache_clear()
    ensure_keys(get_settings().resolved_keys_dir)

    def client(name: str, kind: str = "http") -> Any:
        return create_app("handle", str(ROOT / "functions" / name / "main.py"), kind).test_client()

    register, sessions, allocate = client("register"), client("sessions"), client("workspace-allocate")
    workspaces, provisioner = client("workspaces"), client("provisioner", "cloudevent")
    body = {
        "email": f"bench-{uuid.uuid4().hex[:8]}@example.test",
        "password": "bench-Quartz-91-zebra",
        "name": "B",
    }
    reply = register.post("/api/v5/auth/register", json=body)
    assert reply.status_code == 201, reply.get_data(as_text=True)
    headers = {"Authorization": f"Bearer {reply.get_json()['data']['tokens']['access_token']}"}
    local = LocalProvisioner(get_settings().data_dir / "workspaces")

    def deliver(kind: str) -> None:
        pending = [(h, b) for h, b in events if h.get("ce-type") == f"com.coditect.workspace.{kind}"]
        events[:] = [(h, b) for h, b in events if (h, b) not in pending]
        for h, b in pending:
            answer = provisioner.post("/", headers=h, data=b)
            assert answer.status_code == 200, answer.get_data(as_text=True)

    def platform_run() -> float:
        sid = sessions.post("/api/v5/sessions", json={"name": "bench"}, headers=headers).get_json()["data"][
            "id"
        ]
        started = time.perf_counter()
        reply = allocate.post("/api/v5/workspaces", json={"session_id": sid}, headers=headers)
        assert reply.status_code == 202, reply.get_data(as_text=True)
        wid = reply.get_json()["data"]["id"]
        deliver("requested")
        status = workspaces.get(f"/api/v5/workspaces/{wid}", headers=headers).get_json()["data"]["status"]
        elapsed = time.perf_counter() - started
        assert status == "ready", status
        workspaces.delete(f"/api/v5/workspaces/{wid}", headers=headers)
        deliver("stop_requested")
        events.clear()
        return elapsed

    def baseline_run() -> float:
        ids = {k: str(uuid.uuid4()) for k in ("workspace_id", "tenant_id", "user_id", "session_id")}
        started = time.perf_counter()
        local.start(WorkspaceSpec(**ids))
        elapsed = time.perf_counter() - started
        local.stop(ids["workspace_id"])
        return elapsed

    platform_run()  # warm-up: imports, first store open, page cache
    baseline_run()
    plat: list[float] = []
    base: list[float] = []
    for _ in range(args.runs):
        plat.append(platform_run())
        base.append(baseline_run())
    sink.shutdown()
    leftovers = local.list_workloads()
    for wid in leftovers:
        local.stop(wid)

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50_s": statistics.median(values), "p95_s": pct(values, 0.95), "max_s": max(values)}

    report = {
        "runs": args.runs,
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "platform_allocate_to_ready": summary(plat),
        "baseline_local_start": summary(base),
        "ratio_p50": statistics.median(plat) / statistics.median(base),
        "ratio_p95": pct(plat, 0.95) / pct(base, 0.95),
        "leftover_workloads": len(leftovers),
    }
    lines = [
        f"Allocate → ready with the local provisioner ({args.runs} runs each, alternating with the baseline).",
        "",
        "| path | p50 | p95 | max |",
        "|---|---:|---:|---:|",
    ]
    for name, key in (("allocate → ready (functions in-process)", "platform_allocate_to_ready"),
                      ("baseline: LocalProvisioner.start alone", "baseline_local_start")):  # fmt: skip
        s = report[key]
        assert isinstance(s, dict)
        lines.append(
            f"| {name} | {s['p50_s'] * 1000:.0f} ms | {s['p95_s'] * 1000:.0f} ms | {s['max_s'] * 1000:.0f} ms |"
        )
    lines.append(f"| ratio platform/baseline | {report['ratio_p50']:.2f} | {report['ratio_p95']:.2f} | |")
    report["title"] = "Workspaces: allocate → ready"
    report["markdown"] = "\n".join(lines)
    publish(args.out, report)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
