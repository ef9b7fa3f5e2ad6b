"""Runtime benchmark: the function runtime against a hello-world functions-framework function.

    python bench/bench_runtime.py --out bench/results/runtime.json

1. Throughput: `GET /api/v5/health` served by the health function's own process vs the hello-world
   function (bench/hello/main.py), same command line (functions-framework → gunicorn, 1 worker,
   THREADS = the health function's concurrency), same load tool (wrk, or the Python generator of
   bench/loadgen.py when wrk is absent), 16 connections. Rounds alternate hello/health; the best
   round of each counts. Goal: ratio ≥ 0.9.
2. Cold start of every HTTP function of the registry (those whose main.py exists): time from
   spawning the exact command the local stack and Knative run to the first complete answer to one
   of its routes — a 200 for a public GET route, otherwise the route's answer to an
   unauthenticated call (401), which already runs the authentication middleware. Median of
   `--repeats` starts, vs the hello-world's median. Goal: ratio ≤ 1.5.
3. Import time of each function's main.py in a fresh interpreter (one run each).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from werkzeug.routing import Map, PathConverter, Rule, UUIDConverter

from coditect import registry
from coditect.devstack.plan import Planned, StackSettings, free_port
from coditect.devstack.supervisor import Stack
from coditect.registry.spec import FunctionSpec, Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # bench/ is not a package

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "bench" / "hello" / "main.py"


def sample_path(path: str) -> str:
    rule = Rule(path, endpoint="x")
    Map([rule])
    values: dict[str, Any] = {}
    for name, converter in rule._converters.items():
        values[name] = uuid.uuid4() if isinstance(converter, UUIDConverter) else (
            "a/b.txt" if isinstance(converter, PathConverter) else "sample")  # fmt: skip
    return str(rule.build(values)[1])


def probe_route(spec: FunctionSpec) -> Route:
    public_gets = [r for r in spec.routes if r.method == "GET" and r.auth == "none"]
    return (public_gets or list(spec.routes))[0]


class Proc:
    """A function process started the way the local stack starts it."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.started = time.perf_counter()
        with log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)  # fmt: skip

    def first_answer(self, port: int, method: str, path: str, timeout: float = 60.0) -> tuple[float, int]:
        """Seconds from spawn to the first complete HTTP answer, and its status."""
        while time.perf_counter() - self.started < timeout:
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited with {self.popen.returncode}")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request(method, path, body=b"" if method != "GET" else None)
                response = connection.getresponse()
                response.read()
                return time.perf_counter() - self.started, response.status
            except OSError:
                time.sleep(0.005)
            finally:
                connection.close()
        raise TimeoutError(f"no answer on port {port} after {timeout}s")

    def stop(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


class Bench:
    def __init__(self, data_dir: Path) -> None:
        self.settings = StackSettings(root=ROOT, data_dir=data_dir)
        with open(os.devnull, "w") as quiet:
            Stack(self.settings, out=quiet).prepare()  # data dir and signing keys, as `serve` does
        self.logs = data_dir / "logs"
        self.health = registry.function("health")

    def start(self, spec: FunctionSpec, source: Path) -> tuple[Proc, int]:
        planned = Planned(spec, source, free_port())
        env = planned.env(self.settings, "http://127.0.0.1:9/", dict(os.environ))
        return Proc(planned.argv(), env, self.logs / f"{spec.name}.log"), planned.port

    def hello_spec(self) -> FunctionSpec:
        # Same runtime settings as the health function: only the code differs.
        return FunctionSpec(
            "hello", routes=(Route("hello.get", "GET", "/"),), concurrency=self.health.concurrency
        )

    def throughput(self, rounds: int, seconds: float) -> dict[str, Any]:
        best = {"hello": 0.0, "health": 0.0}
        runs: dict[str, list[float]] = {"hello": [], "health": []}
        targets = {"hello": (self.hello_spec(), HELLO, "/"),
                   "health": (self.health, ROOT / self.health.source, "/api/v5/health")}  # fmt: skip
        for _ in range(rounds):
            for name, (spec, source, path) in targets.items():
                proc, port = self.start(spec, source)
                try:
                    _, status = proc.first_answer(port, "GET", path)
                    assert status == 200, (name, status)
                    url = f"http://127.0.0.1:{port}{path}"
                    loadgen.measure(url, 16, 2)  # warm-up
                    rps = loadgen.measure(url, 16, seconds)
                finally:
                    proc.stop()
                runs[name].append(round(rps, 1))
                best[name] = max(best[name], rps)
        return {"tool": loadgen.tool(), "connections": 16, "seconds": seconds, "runs": runs,
                "hello_rps": round(best["hello"], 1), "health_rps": round(best["health"], 1),
                "ratio": round(best["health"] / best["hello"], 3), "goal": ">= 0.9"}  # fmt: skip

    def cold_start(self, spec: FunctionSpec, source: Path, repeats: int) -> dict[str, Any]:
        route = probe_route(spec)
        path = sample_path(route.path)
        times, status = [], 0
        for _ in range(repeats):
            proc, port = self.start(spec, source)
            try:
                seconds, status = proc.first_answer(port, route.method, path)
            finally:
                proc.stop()
            times.append(seconds)
        return {"seconds": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times],
                "probe": f"{route.method} {route.path}", "status": status}  # fmt: skip

    def import_time(self, source: Path) -> float:
        code = (
            "import importlib.util, sys, time; t = time.perf_counter(); "
            "s = importlib.util.spec_from_file_location('main', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(time.perf_counter() - t)"
        )
        env = dict(os.environ, CODITECT_DATA_DIR=str(self.settings.data_dir),
                   CODITECT_KEYS_DIR=str(self.settings.keys_dir))  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code, str(source)], env=env, cwd=ROOT,
                             check=True, capture_output=True, text=True)  # fmt: skip
        return round(float(out.stdout.strip().splitlines()[-1]), 4)


def markdown(result: dict[str, Any]) -> str:
    t, c = result["throughput"], result["cold_start"]
    ok = lambda passed: "✅" if passed else "❌"  # noqa: E731
    lines = [
        f"Load tool: **{t['tool']}**, {t['connections']} connections, {t['seconds']:.0f} s per run, best of "
        f"{len(t['runs']['hello'])} alternating runs. Machine: {result['machine']}.",
        "",
        "| throughput | requests/s |",
        "|---|---|",
        f"| hello-world function (baseline) | {t['hello_rps']:.0f} |",
        f"| `GET /api/v5/health` (health function) | {t['health_rps']:.0f} |",
        f"| **ratio** (goal ≥ 0.9) | **{t['ratio']:.2f}** {ok(t['ratio'] >= 0.9)} |",
        "",
        f"Cold start = spawn → first complete answer (median of {c['repeats']}); hello-world baseline "
        f"**{c['hello_seconds']:.3f} s**. Import time = executing the function's main.py in a fresh interpreter.",
        "",
        "| function | probe | status | cold start (s) | ratio (goal ≤ 1.5) | import (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in sorted(c["functions"].items()):
        lines.append(f"| {name} | `{row['probe']}` | {row['status']} | {row['seconds']:.3f} | "
                     f"{row['ratio']:.2f} {ok(row['ratio'] <= 1.5)} | {result['import_time'].get(name, '')} |")  # fmt: skip
    lines.append(f"| *hello (baseline)* | `GET /` | 200 | {c['hello_seconds']:.3f} | 1.00 | "
                 f"{result['import_time']['hello']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "runtime.json")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput rounds")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per function")
    args = parser.parse_args()
    functions = [(spec, ROOT / spec.source) for spec in registry.FUNCTIONS
                 if spec.kind == "http" and (ROOT / spec.source).is_file()]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="coditect-bench-") as tmp:
        bench = Bench(Path(tmp))
        throughput = bench.throughput(args.rounds, args.seconds)
        hello = bench.cold_start(bench.hello_spec(), HELLO, max(args.repeats, 5))
        cold = {spec.name: bench.cold_start(spec, source, args.repeats) for spec, source in functions}
        for row in cold.values():
            row["ratio"] = round(row["seconds"] / hello["seconds"], 3)
        imports = {spec.name: bench.import_time(source) for spec, source in functions}
        imports["hello"] = bench.import_time(HELLO)
    result: dict[str, Any] = {
        "area": "runtime",
        "title": "Function runtime vs a hello-world functions-framework function",
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}",
        "throughput": throughput,
        "cold_start": {
            "hello_seconds": hello["seconds"],
            "hello_runs": hello["runs"],
            "repeats": args.repeats,
            "functions": cold,
            "goal": "<= 1.5",
        },
        "import_time": imports,
    }
    result["markdown"] = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(result["markdown"])


if __name__ == "__main__":
    main()
