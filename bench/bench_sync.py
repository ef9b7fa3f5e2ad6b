"""Sync agent benchmark: hydration against a plain download, change latency both ways, footprint.

    python bench/bench_sync.py --out bench/results/sync.json

A private stack (tests/e2e/sync_stack.py: register, sessions, files, files-ops as real
functions-framework processes behind a real gateway process); the agent is a real subprocess.
Trees are written into the store in-process (`coditect.files.upload`, what a PUT does) to keep
set-up short: the figures are about reading them.

1. Hydration of `--files` files totalling `--mib` MiB: spawn of `python -m coditect.sync` to its
   /healthz answering 200, against a plain download of the same bytes through the same gateway
   (a process of its own: recursive listing, then GET of every file with the same parallelism,
   8, written to disk).
   Best of `--rounds`, alternating. Goal: plain / agent ≥ 0.8.
2. Latency over `--changes` changes each: a save in the workspace → the change is in the store
   (seen by a follower long-polling files:changes), and an API PUT → the file complete on local
   disk. Baseline in the same run: an API PUT → the follower sees it (the API's own latency).
   Goal: p95 ≤ 1 s each way.
3. Footprint: the agent's RSS (VmRSS, VmHWM) with a `--tree`-file session whose tree is already
   on disk with no state file (a restart that lost its state: a 10,000-entry listing, every
   file hashed and matched, watches on every directory, no upload), against the same agent on an
   empty session; CPU seconds over `--idle` s of idling (no polling: ≈ 0). Goal: RSS < 64 MiB.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import arguments, publish  # noqa: E402 (bench/ is not a package)

from coditect.files import paths, upload  # noqa: E402
from coditect.files.quota import Policy  # noqa: E402
from coditect.files.tree import FileSpace  # noqa: E402
from coditect.files.versions import NO_CONDITIONS  # noqa: E402
from coditect.store import open_store  # noqa: E402
from tests.e2e.sync_stack import SyncStack, User, wait_for  # noqa: E402

MiB = 1024 * 1024
PARALLEL = 8


def fill(stack: SyncStack, user: User, files: dict[str, bytes]) -> None:
    """Write `files` into the user's session in-process, exactly as a PUT would."""
    db = open_store(f"sqlite://{stack.settings.data_dir / 'store.db'}")
    tid = jwt.decode(user.token, options={"verify_signature": False})["tid"]
    fs = FileSpace(tid, user.sid)
    for rel, data in files.items():
        upload.write_stream(db, fs, paths.parse(rel), io.BytesIO(data), content_length=len(data),
                            content_type="application/octet-stream", conditions=NO_CONDITIONS,
                            policy=Policy(quota_bytes=1 << 40))  # fmt: skip
    db.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 1), "p95_ms": round(pct(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "n": len(values)}  # fmt: skip


# -- 1. hydration -------------------------------------------------------------------------------
def plain_download_main(url: str, sid: str, into: Path) -> None:
    """The baseline as its own process (it pays an interpreter start, as the agent does): list
    the session recursively, GET every file with PARALLEL threads, write each to disk."""
    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    base = f"/api/v5/sessions/{sid}/files"
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        items, cursor = [], None
        while True:
            params: dict[str, Any] = {
                "recursive": "true",
                "limit": 200,
                **({"cursor": cursor} if cursor else {}),
            }
            data = http.get(base, params=params).json()["data"]
            items += [i for i in data["items"] if i["type"] == "file"]
            cursor = data["next_cursor"]
            if not cursor:
                break

        def get(item: dict[str, Any]) -> None:
            target = into / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            with http.stream("GET", f"{base}/{item['path']}") as r, target.open("wb") as out:
                for block in r.iter_bytes():
                    out.write(block)

        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(get, items))


def plain_download(stack: SyncStack, user: User, into: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--plain-download", stack.url, user.sid, str(into)],
                   env={**os.environ, "BENCH_TOKEN": user.token}, check=True)  # fmt: skip
    return time.perf_counter() - started


def agent_hydration(stack: SyncStack, user: User, root: Path) -> float:
    started = time.perf_counter()
    agent = stack.agent(user, root)
    agent.wait_ready(600)
    took = time.perf_counter() - started
    assert agent.stop() == 0
    return took


def hydration(stack: SyncStack, work: Path, n: int, mib: int, rounds: int) -> dict[str, Any]:
    user = stack.user()
    size = mib * MiB // n
    fill(stack, user, {f"d{i % 20}/f{i}.bin": os.urandom(size) for i in range(n)})
    plain, agent = [], []
    for r in range(rounds):
        plain.append(plain_download(stack, user, work / f"plain{r}"))
        agent.append(agent_hydration(stack, user, work / f"agent{r}"))
        got = sum(p.stat().st_size for p in (work / f"agent{r}").rglob("*.bin"))
        assert got == n * size, (got, n * size)
    ratio = min(plain) / min(agent)
    return {"files": n, "bytes": n * size, "rounds": rounds, "parallel": PARALLEL,
            "plain_seconds": [round(s, 2) for s in plain], "agent_seconds": [round(s, 2) for s in agent],
            "plain_mib_s": round(n * size / MiB / min(plain), 1), "agent_mib_s": round(n * size / MiB / min(agent), 1),
            "ratio": round(ratio, 3), "goal": ">= 0.8"}  # fmt: skip


# -- 2. latency ---------------------------------------------------------------------------------
class Follower(threading.Thread):
    """Long-polls the session's change feed; records when each path was first seen."""

    def __init__(self, stack: SyncStack, user: User) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=stack.url, headers=user.headers, timeout=60)
        self.url = user.url() + ":changes"
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stop = False
        r = self.http.get(self.url, params={"limit": 1000})
        self.cursor = r.json()["data"]["cursor"]

    def run(self) -> None:
        while not self.stop:
            r = self.http.get(self.url, params={"since": self.cursor, "wait": 5, "limit": 1000})
            now = time.perf_counter()
            data = r.json()["data"]
            self.cursor = data["cursor"]
            with self.cond:
                for change in data["changes"]:
                    self.seen.setdefault(change["path"], now)
                self.cond.notify_all()

    def wait(self, rel: str, timeout: float = 30) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: rel in self.seen, timeout):
                raise TimeoutError(rel)
            return self.seen[rel]


def latency(stack: SyncStack, work: Path, n: int) -> dict[str, Any]:
    user = stack.user()
    root = work / "latency"
    agent = stack.agent(user, root)
    agent.wait_ready()
    follower = Follower(stack, user)
    follower.start()
    body = b"x" * 2048
    push, pull, direct = [], [], []
    try:
        for i in range(n):
            rel = f"push/{i % 10}/p{i}.txt"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            (root / rel).write_bytes(body)
            push.append(follower.wait(rel) - started)
        for i in range(n):
            rel = f"api/a{i}.txt"
            started = time.perf_counter()
            user.put(rel, body)
            direct.append(follower.wait(rel) - started)
        for i in range(n):
            rel, target = f"pull/q{i}.txt", root / f"pull/q{i}.txt"
            started = time.perf_counter()
            user.put(rel, body)
            wait_for(lambda t=target: t.exists() and t.stat().st_size == len(body), 30, rel, interval=0.001)  # type: ignore[misc]
            pull.append(time.perf_counter() - started)
    finally:
        follower.stop = True
        assert agent.stop() == 0
    return {"changes": n, "bytes": len(body), "save_to_store": ms(push), "api_to_workspace": ms(pull),
            "baseline_api_put_to_feed": ms(direct), "goal": "p95 <= 1000 ms each"}  # fmt: skip


# -- 3. footprint -------------------------------------------------------------------------------
def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def footprint_of(stack: SyncStack, user: User, root: Path, idle: float) -> dict[str, Any]:
    agent = stack.agent(user, root)
    agent.wait_ready(900)
    time.sleep(2)  # settle
    pid = agent.process.pid
    before = cpu_seconds(pid)
    time.sleep(idle)
    cpu = cpu_seconds(pid) - before
    out = {"rss_mib": round(proc_kib(pid, "VmRSS") / 1024, 1), "peak_rss_mib": round(proc_kib(pid, "VmHWM") / 1024, 1),
           "idle_cpu_seconds": round(cpu, 3), "idle_seconds": idle}  # fmt: skip
    assert agent.stop() == 0
    return out


def footprint(stack: SyncStack, work: Path, n: int, idle: float) -> dict[str, Any]:
    empty = footprint_of(stack, stack.user(), work / "empty", idle)
    user = stack.user()
    files = {f"t{i % 100}/s{i // 100 % 10}/f{i}.txt": f"{i}\n".encode() * 20 for i in range(n)}
    fill(stack, user, files)
    for rel, data in files.items():  # the same tree already on disk (a restart without state)
        target = work / "tree" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    tree = footprint_of(stack, user, work / "tree", idle)
    return {"files": n, "empty_session": empty, "tree": tree, "goal": "RSS < 64 MiB, idle CPU ≈ 0"}


def markdown(result: dict[str, Any]) -> str:
    h, lat, fp = result["hydration"], result["latency"], result["footprint"]
    ok = lambda passed: "✅" if passed else "❌"  # noqa: E731
    lines = [
        f"Machine: {result['machine']}. Private stack: register, sessions, files, files-ops as real processes "
        "behind a real gateway; the agent is `python -m coditect.sync` as a subprocess.",
        "",
        f"Hydration of {h['files']} files, {h['bytes'] / MiB:.0f} MiB (spawn → /healthz 200), best of {h['rounds']}:",
        "",
        "| | seconds | MiB/s |",
        "|---|---|---|",
        f"| plain download through the API (own process: listing + {h['parallel']} parallel GETs to disk; baseline) "
        f"| {min(h['plain_seconds'])} | {h['plain_mib_s']} |",
        f"| sync agent hydration | {min(h['agent_seconds'])} | {h['agent_mib_s']} |",
        f"| **ratio plain / agent** (goal ≥ 0.8) | **{h['ratio']:.2f}** {ok(h['ratio'] >= 0.8)} | |",
        "",
        f"Latency over {lat['changes']} changes each ({lat['bytes']} B files):",
        "",
        "| | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---|---|---|",
    ]
    for key, label in (("baseline_api_put_to_feed", "API PUT → in the change feed (baseline)"),
                       ("save_to_store", "save in the workspace → in the store (feed)"),
                       ("api_to_workspace", "API PUT → complete on the workspace disk")):  # fmt: skip
        row = lat[key]
        mark = "" if key.startswith("baseline") else f" {ok(row['p95_ms'] <= 1000)}"
        lines.append(f"| {label} | {row['p50_ms']} | {row['p95_ms']}{mark} | {row['max_ms']} |")
    e, t = fp["empty_session"], fp["tree"]
    lines += [
        "",
        f"Footprint (ready with the tree on disk, reconciled by hash without uploads, then "
        f"{t['idle_seconds']:.0f} s idle):",
        "",
        "| agent on | RSS (MiB) | peak RSS (MiB) | CPU s while idle |",
        "|---|---|---|---|",
        f"| an empty session (baseline) | {e['rss_mib']} | {e['peak_rss_mib']} | {e['idle_cpu_seconds']} |",
        f"| a {fp['files']}-file session | {t['rss_mib']} {ok(t['peak_rss_mib'] < 64)} | {t['peak_rss_mib']} "
        f"| {t['idle_cpu_seconds']} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, "sync")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--tree", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--plain-download", nargs=3, metavar=("URL", "SID", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_download:
        url, sid, into = args.plain_download
        plain_download_main(url, sid, Path(into))
        return
    with tempfile.TemporaryDirectory(prefix="coditect-bench-sync-") as tmp:
        work = Path(tmp)
        stack = SyncStack.start(work / f"stack-{uuid.uuid4().hex[:6]}")
        try:
            result: dict[str, Any] = {
                "title": "Workspace sync agent: hydration, change latency, footprint",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "hydration": hydration(stack, work, args.files, args.mib, args.rounds),
                "latency": latency(stack, work, args.changes),
                "footprint": footprint(stack, work, args.tree, args.idle),
            }
        finally:
            stack.stop()
    result["markdown"] = markdown(result)
    publish(args.out, result)


if __name__ == "__main__":
    main()
