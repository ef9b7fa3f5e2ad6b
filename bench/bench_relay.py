"""Relay benchmark: WebSocket echo through the relay vs configurable-http-proxy vs direct.

    python bench/bench_relay.py --out bench/results/relay.json [--seconds 8] [--connections 50] [--rounds 3]

One workspace program (its /echo) is the echo server for all three paths; the relay runs as
`python -m coditect.relay` (uvicorn + uvloop, its own process) over a SQLite store; CHP (npm
`configurable-http-proxy`, installed into bench/node_modules on first run, not committed) runs
with --default-target pointing at the same echo server. The load generator is a separate
process (uvloop, websockets, no compression): `connections` sockets each send a 1 KiB message
and wait for its echo, back to back; we report round trips per second and the p50/p99 round
trip. CHP and the relay are measured in `rounds` interleaved slices (CHP, relay / relay, CHP /
...; `seconds` in total each) and their samples pooled, so load from anything else on the machine
falls on both alike; the per-round ratios are reported too. Then 1,000 idle relayed sockets are opened and the relay's RSS delta / 1000 is reported.
Goals (issue 7): relay ≥ 1.0x CHP messages/s with a p99 no worse; < 64 KiB per idle socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from run import arguments, publish  # noqa: E402 (bench/ is not a package)

from coditect.devstack.plan import free_port  # noqa: E402
from tests.e2e.stack import wait_listening  # noqa: E402

ORIGIN = "https://app.example"


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def ensure_chp() -> Path:
    binary = BENCH / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is required to install configurable-http-proxy")
        subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(BENCH),
                        "configurable-http-proxy"], check=True, capture_output=True)  # fmt: skip
    return binary


# -- the load generator (runs in its own process: `bench_relay.py --load ...`) --------------------
async def _load(
    urls: list[str], protocols: list[list[str]], seconds: float, warmup: float
) -> dict[str, float]:
    from websockets.asyncio.client import connect

    payload = os.urandom(512).hex()  # 1 KiB text
    rtts: list[float] = []
    state = {"measuring": False, "stop": False}

    async def worker(url: str, protos: list[str]) -> int:
        count = 0
        async with connect(url, origin=ORIGIN, subprotocols=protos or None, compression=None,  # type: ignore[arg-type]
                           proxy=None, max_size=None, ping_interval=None) as conn:  # fmt: skip
            while not state["stop"]:
                started = time.perf_counter()
                await conn.send(payload)
                await conn.recv()
                if state["measuring"]:
                    rtts.append(time.perf_counter() - started)
                    count += 1
        return count

    tasks = [asyncio.create_task(worker(u, p)) for u, p in zip(urls, protocols, strict=True)]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - t0
    state["stop"] = True
    counts = await asyncio.gather(*tasks)
    rtts.sort()

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000

    return {
        "messages_per_s": sum(counts) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "samples": len(rtts),
        "elapsed_s": elapsed,
        "rtts_us": [round(r * 1e6) for r in rtts],  # pooled across rounds by the parent
    }


async def _idle(urls: list[str], protocols: list[list[str]], hold: str) -> None:
    """Open every socket (50 at a time), print "open", wait for a line on stdin, close."""
    from websockets.asyncio.client import connect

    conns = []
    gate = asyncio.Semaphore(50)

    async def one(url: str, protos: list[str]) -> None:
        async with gate:
            conn = await connect(url, origin=ORIGIN, subprotocols=protos, compression=None, proxy=None,  # type: ignore[arg-type]
                                 ping_interval=None, open_timeout=30)  # fmt: skip
            await conn.send("hi")
            await conn.recv()
            conns.append(conn)

    await asyncio.gather(*(one(u, p) for u, p in zip(urls, protocols, strict=True)))
    print("open", len(conns), flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


def load_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if spec["mode"] == "load":
        result = asyncio.run(_load(spec["urls"], spec["protocols"], spec["seconds"], spec["warmup"]))
        Path(spec_path + ".out").write_text(json.dumps(result))  # samples: too big for a pipe line
    else:
        asyncio.run(_idle(spec["urls"], spec["protocols"], "stdin"))


def run_load(tmp: Path, urls: list[str], protocols: list[list[str]], seconds: float) -> dict[str, Any]:
    spec = tmp / f"load-{uuid.uuid4().hex}.json"
    spec.write_text(
        json.dumps({"mode": "load", "urls": urls, "protocols": protocols, "seconds": seconds, "warmup": 0.5})
    )
    proc = subprocess.run([sys.executable, __file__, "--load", str(spec)], capture_output=True, text=True)
    out = Path(f"{spec}.out")
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"load client failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def pooled(runs: list[dict[str, Any]]) -> dict[str, float]:
    """One figure from several slices: total round trips / total time, percentiles of all samples."""
    rtts = sorted(r for run in runs for r in run["rtts_us"])
    elapsed = sum(run["elapsed_s"] for run in runs)

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] / 1000

    return {
        "messages_per_s": len(rtts) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "samples": len(rtts),
    }


def interleaved(
    setup: Setup, n: int, seconds: float, rounds: int
) -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """CHP and the relay in alternating slices; pooled figures and each round's ratios."""
    chp_urls = [f"ws://127.0.0.1:{setup.chp_port}/echo"] * n
    runs: dict[str, list[dict[str, Any]]] = {"chp": [], "relay": []}
    per_round = []
    for r in range(rounds):
        order = ("chp", "relay") if r % 2 == 0 else ("relay", "chp")
        for name in order:
            if name == "chp":
                runs[name].append(run_load(setup.tmp, chp_urls, [[]] * n, seconds / rounds))
            else:
                runs[name].append(
                    run_load(setup.tmp, setup.relay_urls(n), setup.tickets(n), seconds / rounds)
                )
        chp, relay = runs["chp"][-1], runs["relay"][-1]
        per_round.append({"messages_ratio": relay["messages_per_s"] / chp["messages_per_s"],
                          "p99_ratio": relay["p99_ms"] / chp["p99_ms"]})  # fmt: skip
    return {name: pooled(slices) for name, slices in runs.items()}, per_round


# -- the run -----------------------------------------------------------------------------------
class Setup:
    def __init__(self, tmp: Path, per_user: int) -> None:
        from coditect.store import open_store

        self.tmp = tmp
        self.store_url = f"sqlite://{tmp / 'store.db'}?synchronous=NORMAL"
        self.db = open_store(self.store_url)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CODITECT_")}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.echo_port = free_port()
        self.spawn([sys.executable, "-m", "coditect.workspaces.program", "--port", str(self.echo_port)], self.env,
                   self.echo_port, "workspace")  # fmt: skip
        self.relay_port = free_port()
        relay_env = dict(self.env, CODITECT_DATA_DIR=str(tmp), CODITECT_STORE=self.store_url,
                         CODITECT_CORS_ORIGINS=f'["{ORIGIN}"]', CODITECT_PUBLIC_BASE_URL=ORIGIN,
                         CODITECT_RELAY_MAX_CONNECTIONS_PER_USER=str(per_user), CODITECT_LOG_LEVEL="WARNING")  # fmt: skip
        self.relay = self.spawn([sys.executable, "-m", "coditect.relay", "--host", "127.0.0.1", "--port",
                                 str(self.relay_port)], relay_env, self.relay_port, "relay")  # fmt: skip
        self.chp_port = free_port()
        chp = ensure_chp()
        self.spawn([str(chp), "--ip", "127.0.0.1", "--port", str(self.chp_port), "--api-ip", "127.0.0.1",
                    "--api-port", str(free_port()), "--default-target", f"http://127.0.0.1:{self.echo_port}",
                    "--log-level", "error"], self.env, self.chp_port, "chp")  # fmt: skip
        self.login, self.workspace = self._records()

    def spawn(self, argv: list[str], env: dict[str, str], port: int, name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        wait_listening(port, proc, 30)
        return proc

    def _records(self):  # type: ignore[no-untyped-def]
        from coditect.identity import repository as identity
        from coditect.identity.context import mint
        from coditect.workspaces import lifecycle, repository
        from coditect.workspaces.models import WorkspaceRecord
        from coditect.workspaces.provisioner import Endpoint

        ctx = mint(
            tenant_id=str(uuid.uuid4()),
            user_id=str(uuid.uuid4()),
            session_id=str(uuid.uuid4()),
            role="member",
        )
        self.db.transact(
            lambda tr: identity.set_live(tr, ctx.tenant_id, ctx.session_id, ctx.user_id, "member")
        )
        at = datetime.now(UTC)
        record = WorkspaceRecord(id=str(uuid.uuid4()), tenant_id=ctx.tenant_id, user_id=ctx.user_id,
                                 session_id=str(uuid.uuid4()), status="requested", created_at=at, updated_at=at)  # fmt: skip
        record = lifecycle.advance(record, "provisioning", at)
        record = lifecycle.advance(record, "ready", at, endpoint=Endpoint("127.0.0.1", self.echo_port))
        self.db.transact(repository.save, record, None)
        return ctx, record

    def tickets(self, n: int) -> list[list[str]]:
        from coditect.workspaces import tickets

        return [
            ["coditect.ticket." + tickets.issue_ticket(self.db, self.login, self.workspace.id).ticket]
            for _ in range(n)
        ]

    def relay_urls(self, n: int) -> list[str]:
        return [f"ws://127.0.0.1:{self.relay_port}/workspaces/{self.workspace.id}/echo"] * n

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.db.close()


def idle_memory(setup: Setup, n: int) -> dict[str, float]:
    # Warm the relay (modules, pools, first connections) before the baseline.
    warm = setup.tickets(20)
    run_idle(setup, setup.relay_urls(20), warm)
    time.sleep(1.5)
    before = rss(setup.relay.pid)
    protocols = setup.tickets(n)
    after = run_idle(setup, setup.relay_urls(n), protocols, measure=setup.relay.pid)
    return {"connections": n, "rss_before_bytes": before, "rss_after_bytes": after,
            "per_connection_kib": (after - before) / n / 1024}  # fmt: skip


def run_idle(setup: Setup, urls: list[str], protocols: list[list[str]], measure: int | None = None) -> int:
    spec = setup.tmp / f"idle-{uuid.uuid4().hex}.json"
    spec.write_text(json.dumps({"mode": "idle", "urls": urls, "protocols": protocols}))
    proc = subprocess.Popen([sys.executable, __file__, "--load", str(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    if not line.startswith("open"):
        proc.kill()
        raise RuntimeError(f"idle client failed: {line!r}")
    time.sleep(1.0)  # let the relay settle (handshake buffers freed)
    value = rss(measure) if measure else 0
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(60)
    return value


def markdown(
    results: dict[str, dict[str, float]],
    idle: dict[str, float],
    connections: int,
    per_round: list[dict[str, float]],
) -> str:
    chp = results["chp"]
    lines = [
        f"WebSocket echo, {connections} connections, 1 KiB text messages, one round trip in flight per socket "
        f"(CHP and relay: {len(per_round)} interleaved rounds, pooled):",
        "",
        "| path | messages/s | vs CHP | p50 ms | p99 ms | p99 vs CHP |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (
        ("direct", "direct to echo"),
        ("chp", "configurable-http-proxy"),
        ("relay", "Coditect relay"),
    ):
        r = results[name]
        lines.append(f"| {label} | {r['messages_per_s']:,.0f} | {r['messages_per_s'] / chp['messages_per_s']:.2f}x | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p99_ms'] / chp['p99_ms']:.2f}x |")  # fmt: skip
    rounds = ", ".join(f"{r['messages_ratio']:.2f}x / {r['p99_ratio']:.2f}x" for r in per_round)
    lines += [
        "",
        f"Relay vs CHP per round (messages/s / p99): {rounds}; median "
        f"{median(r['messages_ratio'] for r in per_round):.2f}x / {median(r['p99_ratio'] for r in per_round):.2f}x.",
        "",
        f"Idle relayed WebSockets held by one relay process: {idle['connections']:,}; relay RSS "
        f"{idle['rss_before_bytes'] / 2**20:.1f} → {idle['rss_after_bytes'] / 2**20:.1f} MiB = "
        f"**{idle['per_connection_kib']:.1f} KiB per connection** (goal < 64 KiB).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, "relay")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        return load_main(args.load)
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmpdir:
        setup = Setup(Path(tmpdir), per_user=args.idle + 100)
        try:
            n = args.connections
            direct = run_load(
                setup.tmp, [f"ws://127.0.0.1:{setup.echo_port}/echo"] * n, [[]] * n, args.seconds
            )
            proxied, per_round = interleaved(setup, n, args.seconds, args.rounds)
            results = {"direct": pooled([direct]), **proxied}
            idle = idle_memory(setup, args.idle)
        finally:
            setup.close()
    ratio = results["relay"]["messages_per_s"] / results["chp"]["messages_per_s"]
    p99_ratio = results["relay"]["p99_ms"] / results["chp"]["p99_ms"]
    report = {
        "title": f"Relay: {ratio:.2f}x CHP messages/s, p99 {p99_ratio:.2f}x CHP, "
        f"{idle['per_connection_kib']:.1f} KiB per idle socket",
        "markdown": markdown(results, idle, args.connections, per_round),
        "goals": {"messages_ratio_min": 1.0, "p99_ratio_max": 1.0, "idle_kib_max": 64},
        "met": {"messages": ratio >= 1.0, "p99": p99_ratio <= 1.0, "idle": idle["per_connection_kib"] < 64},
        "results": results,
        "per_round": per_round,
        "median_round": {k: median(r[k] for r in per_round) for k in ("messages_ratio", "p99_ratio")},
        "idle": idle,
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    publish(args.out, report)


if __name__ == "__main__":
    main()
