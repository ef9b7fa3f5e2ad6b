"""Load-and-fault soak of the real local stack, with an acknowledged-write ledger checked at the end.

    nox -s soak -- --users 20 --minutes 2 --faults on
    python bench/soak.py --users 20 --minutes 2 --faults on --out bench/results/soak.json

Starts `python -m coditect.devstack serve` (its own data dir, a free port), registers `--users`
users, and each loops over real API calls through the front door, paced to `--rate` requests/s
in all (bench/soak_client.py): file PUTs with self-checking bytes, message appends and session
creates with an `Idempotency-Key`, file reads; every 2xx write goes into a JSONL ledger.

With `--faults on`, after a quiet baseline window: one function process (files, messages,
sessions, conversations in turn) is killed with SIGKILL every `--kill-every` seconds (the
supervisor restarts it), the whole stack is killed with SIGKILL `--stack-kills` times and started
again on the same data dir and port, and `--slow-clients` connections trickle a file body at one
byte per second, half without a token (bench/soak_stack.py). Clients retry idempotently.

At the end everything in the ledger is read back through the API (bench/soak_check.py): nothing
acknowledged may be missing, duplicated or torn, and no request may have answered 500. The result
goes to `--out` (bench/results/soak.json by default, then bench/RESULTS.md is recomposed by
bench/run.py's `compose`); the exit status is 1 when the check or the no-500 rule fails.
The baseline for the latency figures is the quiet window before the first fault, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench_run  # bench/ is not a package
from soak_check import Check, check
from soak_client import Ledger, Stats, User
from soak_stack import KILLABLE, Stack, slow_client

RESULTS = Path(__file__).resolve().parent / "results"
GATEWAY = ("502", "503", "504")  # a killed or restarting function: expected under faults, retried


@dataclass
class Config:
    users: int = 20
    minutes: float = 2.0
    faults: bool = True
    rate: float = 30.0  # requests/s for all users together (0: unpaced)
    kill_every: float = 30.0
    stack_kills: int = 2
    slow_clients: int = 4
    baseline: float = 20.0  # seconds without faults at the start (the latency baseline)

    @property
    def seconds(self) -> float:
        return self.minutes * 60


class Soak:
    """One soak: `with Soak(config, work_dir) as soak: report = soak.execute()`; the stack stays
    up inside the block (so `soak.check()` can verify the ledger again) and is stopped after it."""

    def __init__(self, config: Config, work_dir: Path) -> None:
        self.config, self.work_dir = config, work_dir
        self.run_id = uuid.uuid4().hex[:8]
        self.ledger_path = work_dir / "ledger.jsonl"
        self.stats = Stats()
        self.slow = Counter[str]()
        self.fault_log: list[tuple[float, str]] = []
        self.users: dict[int, User] = {}
        self.stack: Stack | None = None
        self.t0 = time.monotonic()
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> Soak:
        self.stack = Stack(self.work_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        for user in self.users.values():
            self.loop.run_until_complete(user.close())
        self.loop.close()
        if self.stack is not None:
            self.stack.stop()

    def execute(self) -> dict[str, Any]:
        uptime_before = _uptime()
        started = time.monotonic()
        self.loop.run_until_complete(self._load())
        took = time.monotonic() - started
        checked = self.check()
        return self._report(checked, took, uptime_before)

    def check(self) -> Check:
        return self.loop.run_until_complete(check(self.ledger_path, self.users))

    async def _load(self) -> None:
        assert self.stack is not None
        ledger = Ledger(self.ledger_path)
        c = self.config
        for i in range(c.users):
            self.users[i] = User(i, self.stack.url, self.run_id, ledger, self.stats)
        await asyncio.gather(*(u.register() for u in self.users.values()))
        self.t0 = time.monotonic()
        until = self.t0 + c.seconds
        interval = c.users / c.rate if c.rate > 0 else 0.0
        tasks = [asyncio.create_task(u.run(until, interval)) for u in self.users.values()]
        if c.faults:
            tasks.append(asyncio.create_task(self._faults(until)))
            token = self.users[0].tokens["access_token"]
            path = f"/api/v5/sessions/{self.users[0].sessions[0]}/files/slow.bin"
            for n in range(c.slow_clients):
                start = self.t0 + c.baseline
                tasks.append(asyncio.create_task(self._slow(start, until, path, token if n % 2 else None)))
        await asyncio.gather(*tasks)
        ledger.close()

    async def _slow(self, start: float, until: float, path: str, token: str | None) -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        assert self.stack is not None
        await slow_client(self.stack.url, path, token, until, self.slow)

    async def _faults(self, until: float) -> None:
        """Function kills every kill_every seconds after the baseline window; whole-stack kills
        spread evenly over the fault window, replacing the function kill due at that time."""
        assert self.stack is not None
        c = self.config
        window = c.seconds - c.baseline
        stack_at = [
            self.t0 + c.baseline + window * (k + 0.5) / max(c.stack_kills, 1) for k in range(c.stack_kills)
        ]
        next_kill, victim = self.t0 + c.baseline, 0
        while next_kill < until - 5:
            await asyncio.sleep(max(0.0, next_kill - time.monotonic()))
            if stack_at and stack_at[0] <= next_kill + c.kill_every / 2:
                stack_at.pop(0)
                self._note("kill -9 the whole stack")
                await asyncio.to_thread(self.stack.kill_and_restart)
                self._note(f"stack up again after {self.stack.restart_seconds[-1]:.1f} s")
            else:
                name = KILLABLE[victim % len(KILLABLE)]
                victim += 1
                killed = await asyncio.to_thread(self.stack.kill_function, name)
                self._note(f"kill -9 {name}" if killed else f"{name}: no live process to kill")
            next_kill += c.kill_every

    def _note(self, what: str) -> None:
        at = time.monotonic() - self.t0
        self.fault_log.append((round(at, 1), what))
        print(f"[soak {at:6.1f} s] {what}", flush=True)

    def _report(self, checked: Check, took: float, uptime_before: str) -> dict[str, Any]:
        assert self.stack is not None
        c, s = self.config, self.stats
        # From the first paced operation on (registration, Argon2 included, is not the workload).
        quiet = [lat for at, lat in s.latencies if 0 <= at - self.t0 < c.baseline]
        rest = [lat for at, lat in s.latencies if at - self.t0 >= c.baseline]
        answers = s.statuses + self.slow  # slow clients' answers must not be 500s either
        server_errors = sum(n for code, n in answers.items() if code.startswith("5") and code not in GATEWAY)
        return {
            "title": f"load and faults, acknowledged writes read back ({c.users} users, {c.minutes:g} min, "
            f"faults {'on' if c.faults else 'off'})",
            "config": vars(c) | {"seconds": c.seconds},
            "uptime_before": uptime_before,
            "uptime_after": _uptime(),
            "seconds": round(took, 1),
            "requests": s.requests,
            "rate": round(s.requests / took, 1),
            "statuses": dict(sorted(s.statuses.items())),
            "server_errors": server_errors,
            "abandoned": s.abandoned,
            "unexpected_answers": s.errors[:20],
            "read_mismatches": s.read_mismatches[:20],
            "faults": {
                "function_kills": dict(self.stack.function_kills),
                "function_restarts_seen": self.stack.function_restarts(),
                "stack_kills": self.stack.stack_kills,
                "stack_restart_seconds": [round(x, 1) for x in self.stack.restart_seconds],
                "slow_clients": c.slow_clients if c.faults else 0,
                "slow_client_outcomes": dict(self.slow),
                "log": self.fault_log,
            },
            "check": checked.summary(),
            "latency_ms": {
                "all": _percentiles(quiet + rest),
                "baseline": _percentiles(quiet),
                "after_baseline": _percentiles(rest),
            },
            "passed": checked.ok and server_errors == 0 and not s.read_mismatches,
        }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"p50": None, "p95": None, "n": len(values)}
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49] * 1000, 1), "p95": round(q[94] * 1000, 1), "n": len(values)}


def _uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) + f" (load avg, {os.cpu_count()} cpus)"


def markdown(r: dict[str, Any]) -> str:
    """The RESULTS.md section: load, faults, the ledger check, latency against the baseline window."""
    ck, f, lat = r["check"], r["faults"], r["latency_ms"]
    acked = ", ".join(f"{n} {k}s" for k, n in ck["acknowledged"].items())
    statuses = ", ".join(f"{k}: {n}" for k, n in r["statuses"].items())
    kills = ", ".join(f"{k}: {n}" for k, n in sorted(f["function_kills"].items())) or "none"
    slow = ", ".join(f"{k}: {n}" for k, n in sorted(f["slow_client_outcomes"].items())) or "none"
    restart = ", ".join(f"{x} s" for x in f["stack_restart_seconds"]) or "-"

    def ms(window: str, p: str) -> str:
        v = lat[window][p]
        return "-" if v is None else f"{v} ms"

    rows = [
        ("verdict", "**PASS**" if r["passed"] else "**FAIL**"),
        ("requests", f"{r['requests']} in {r['seconds']} s = {r['rate']} req/s (paced at {r['config']['rate']:g})"),
        ("status counts", statuses),
        ("500s (not 502/503/504)", str(r["server_errors"])),
        ("function kills (kill -9)", f"{kills}; restarts seen {f['function_restarts_seen']}"),
        ("whole-stack kills (kill -9) / restart time", f"{f['stack_kills']} / {restart}"),
        ("slow-body clients (1 B/s) / their outcomes", f"{f['slow_clients']} / {slow}"),
        ("writes acknowledged", acked or "none"),
        ("lost / duplicated / corrupt (torn)", f"{ck['lost']} / {ck['duplicated']} / {ck['corrupt']}"),
        ("requests abandoned (no answer in 90 s)", str(r["abandoned"])),
        ("reads not matching an acknowledged write", str(len(r["read_mismatches"]))),
        ("latency p50 / p95, 2xx (whole run, registration excluded)", f"{ms('all', 'p50')} / {ms('all', 'p95')}"),
        ("… baseline window (first {:g} s, no faults)".format(r["config"]["baseline"]),
         f"{ms('baseline', 'p50')} / {ms('baseline', 'p95')}"),
        ("… after it" + (" (faults)" if r["config"]["faults"] else ""), f"{ms('after_baseline', 'p50')} / {ms('after_baseline', 'p95')}"),
        ("machine load before / after", f"{r['uptime_before']} / {r['uptime_after']}"),
    ]  # fmt: skip
    table = "\n".join(f"| {a} | {b} |" for a, b in rows)
    command = f"nox -s soak -- --users {r['config']['users']} --minutes {r['config']['minutes']:g} " + (
        f"--faults {'on' if r['config']['faults'] else 'off'}"
    )
    return (
        f"`{command}` (bench/soak.py; [docs/soak.md](../docs/soak.md)): real local stack, real processes, every "
        "acknowledged write read back through the API at the end.\n\n| figure | value |\n|---|---|\n" + table
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Config()
    parser.add_argument("--users", type=int, default=d.users)
    parser.add_argument("--minutes", type=float, default=d.minutes)
    parser.add_argument("--faults", choices=("on", "off"), default="on")
    parser.add_argument("--rate", type=float, default=d.rate, help="requests/s for all users (0: unpaced)")
    parser.add_argument(
        "--kill-every", type=float, default=d.kill_every, help="seconds between function kills"
    )
    parser.add_argument("--stack-kills", type=int, default=d.stack_kills)
    parser.add_argument("--slow-clients", type=int, default=d.slow_clients)
    parser.add_argument("--baseline", type=float, default=d.baseline, help="quiet seconds before faults")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--keep", type=Path, help="keep the stack's data dir and the ledger here")
    a = parser.parse_args()
    config = Config(
        a.users, a.minutes, a.faults == "on", a.rate, a.kill_every, a.stack_kills, a.slow_clients, a.baseline
    )
    with tempfile.TemporaryDirectory(prefix="coditect-soak-") as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with Soak(config, work) as soak:
            report = soak.execute()
    report["markdown"] = markdown(report)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(report["markdown"])
    if a.out.resolve().parent == RESULTS:
        (RESULTS.parent / "RESULTS.md").write_text(bench_run.compose({}))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
