"""Files benchmark: the file store against raw SQLite, and the files function against hello-world.

    python bench/bench_files.py --out bench/results/files.json

1. In-process throughput of a 16 MiB file: `coditect.files` write (streamed: hashing, staged
   chunks, refcounts, publish) and read (manifest + chunks), against raw `sqlite3` inserting and
   then selecting the same bytes in the same 64 KiB chunks (sequential keys) into a table of the
   same shape, same file settings (WAL, same `synchronous`). Same number of transactions for the
   bytes: the raw writer commits the chunks in the store's staging transactions
   (`upload.staging_plan`: 1, 1, 2, then 4 MiB; the store then commits one publish more), the raw reader
   reads `service.READ_BATCH` chunks per transaction like `iter_content` (the store opens the file
   in one read transaction more). Best of `--rounds`, the two sides alternating in each round.
   Goal: ratio ≥ 0.5 both ways.
2. Through real function processes (bench_runtime's `Bench`: functions-framework → gunicorn, one
   worker, THREADS = the spec's concurrency, like the local stack): PUT and GET of 4 KiB and
   1 MiB files, 10 concurrent keep-alive connections for `--seconds` each (the seed's "10+
   concurrent users"; 40 files per size, all with the same content so dedup is exercised, each
   connection writing its own share in turn), p50/p95 latency from `loadgen.run` (wrk when
   installed, like the front-door benchmark; a timed run gives the p95 ~1,300 samples where 25
   requests per client gave 250), beside GET / of the hello-world function at the same
   concurrency: straight to the functions (context), then the same through the front door of a
   whole local stack (`python -m coditect.devstack serve`, started here as bench_frontdoor does;
   `--base-url URL` uses a running one instead), as a user sees it. Goal (issue 14): 4 KiB PUT and GET p95 < 50 ms
   through the front door.
3. A 100 MiB PUT's peak memory in the files function's worker process (direct): VmHWM after the
   upload minus VmRSS at idle (after warm-up). Goal: < 64 MiB.

Context ("history"): what a file's version history costs each 4 KiB write, in-process.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from coditect.files import paths, service, upload
from coditect.files.chunks import CHUNK_SIZE
from coditect.files.quota import Policy
from coditect.files.tree import FileSpace
from coditect.files.versions import NO_CONDITIONS
from coditect.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # bench/ is not a package
from accounts import register  # bench/ is not a package
from bench_frontdoor import start_stack, stop  # bench/ is not a package
from bench_runtime import Bench  # bench/ is not a package
from run import arguments, publish  # bench/ is not a package

MiB = 1024 * 1024
CLIENTS = 10
FILES_PER_CLIENT = 4


# -- 1. in-process ----------------------------------------------------------------------------------
def raw_sqlite(path: Path, data: bytes, synchronous: str) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    prefix = uuid.uuid4().bytes
    pieces = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    started = time.perf_counter()
    first = 0
    for n in upload.staging_plan(len(pieces)) or [len(pieces)]:  # the store's staging transactions
        conn.execute("BEGIN IMMEDIATE")
        for i, piece in enumerate(pieces[first : first + n], start=first):
            conn.execute("INSERT INTO kv VALUES (?, ?)", (prefix + i.to_bytes(4, "big"), piece))
        conn.execute("COMMIT")
        first += n
    write = time.perf_counter() - started
    started = time.perf_counter()
    out = []
    for first in range(0, len(pieces), service.READ_BATCH):  # the store's read transactions
        conn.execute("BEGIN")
        for i in range(first, min(first + service.READ_BATCH, len(pieces))):
            out.append(
                conn.execute(
                    "SELECT value FROM kv WHERE key = ?", (prefix + i.to_bytes(4, "big"),)
                ).fetchone()[0]
            )
        conn.execute("COMMIT")
    read = time.perf_counter() - started
    assert b"".join(out) == data
    conn.close()
    return write, read


def file_store(db_path: Path, data: bytes, synchronous: str) -> tuple[float, float]:
    db = open_store(f"sqlite://{db_path}?synchronous={synchronous}")
    fs = FileSpace(str(uuid.uuid4()), str(uuid.uuid4()))
    path = paths.parse("bench/file.bin")
    started = time.perf_counter()
    upload.write_stream(db, fs, path, io.BytesIO(data), content_length=len(data),
                        content_type="application/octet-stream", conditions=NO_CONDITIONS, policy=Policy())  # fmt: skip
    write = time.perf_counter() - started
    started = time.perf_counter()
    readable = service.open_file(db, fs, path)
    pieces = list(service.iter_content(db, fs.tenant_id, readable.manifest, 0, readable.manifest.size))
    read = time.perf_counter() - started
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == readable.record.sha256
    db.close()
    return write, read


def in_process(rounds: int, synchronous: str) -> dict[str, Any]:
    data = os.urandom(16 * MiB)
    best = {"raw_write": 1e9, "raw_read": 1e9, "files_write": 1e9, "files_read": 1e9}
    with tempfile.TemporaryDirectory(prefix="coditect-bench-files-") as tmp:
        for r in range(rounds):
            w, rd = raw_sqlite(Path(tmp) / f"raw{r}.db", data, synchronous)
            best["raw_write"], best["raw_read"] = min(best["raw_write"], w), min(best["raw_read"], rd)
            w, rd = file_store(Path(tmp) / f"files{r}.db", data, synchronous)
            best["files_write"], best["files_read"] = min(best["files_write"], w), min(best["files_read"], rd)
    mbps = {k: round(16 / v, 1) for k, v in best.items()}
    n, plan = len(data) // CHUNK_SIZE, upload.staging_plan(len(data) // CHUNK_SIZE)
    transactions = {"raw_write": len(plan), "files_write": len(plan) + 1,
                     "raw_read": -(-n // service.READ_BATCH), "files_read": -(-n // service.READ_BATCH) + 1}  # fmt: skip
    return {"size_mib": 16, "chunk_bytes": CHUNK_SIZE, "chunks_per_write_transaction": plan,
            "read_chunks_per_transaction": service.READ_BATCH, "transactions": transactions,
            "synchronous": synchronous, "rounds": rounds, "mib_per_s": mbps,
            "write_ratio": round(mbps["files_write"] / mbps["raw_write"], 3),
            "read_ratio": round(mbps["files_read"] / mbps["raw_read"], 3), "goal": ">= 0.5"}  # fmt: skip


def history_cost(synchronous: str, rounds: int, writes: int = 100) -> dict[str, Any]:
    """In-process 4 KiB overwrites of a file at its retention limit (`Policy().keep_versions`
    versions: every write adds one and drops the oldest) against the same overwrites of a file
    that keeps 2 (also drops one per write): what a file's history costs each write, e.g. an
    editor's autosave of a long-edited file. Median ms per write over `rounds` alternating slices."""
    data = os.urandom(4096)
    long_policy, short_policy = Policy(), Policy(keep_versions=2)
    with tempfile.TemporaryDirectory(prefix="coditect-bench-files-history-") as tmp:
        db = open_store(f"sqlite://{tmp}/h.db?synchronous={synchronous}")
        fs = FileSpace(str(uuid.uuid4()), str(uuid.uuid4()))

        def write(name: str, policy: Policy) -> None:
            upload.write_stream(db, fs, paths.parse(name), io.BytesIO(data), content_length=len(data),
                                content_type="text/plain", conditions=NO_CONDITIONS, policy=policy)  # fmt: skip

        for _ in range(long_policy.keep_versions):
            write("long.txt", long_policy)
            write("short.txt", short_policy)
        per_write: dict[str, list[float]] = {"long": [], "short": []}
        for _ in range(rounds):
            for key, policy in (("long", long_policy), ("short", short_policy)):
                started = time.perf_counter()
                for _ in range(writes):
                    write(f"{key}.txt", policy)
                per_write[key].append((time.perf_counter() - started) / writes * 1000)
        db.close()
    long_ms, short_ms = statistics.median(per_write["long"]), statistics.median(per_write["short"])
    return {"versions": long_policy.keep_versions, "writes_per_round": writes, "rounds": rounds,
            "at_limit_ms": round(long_ms, 3), "two_versions_ms": round(short_ms, 3),
            "ratio": round(long_ms / short_ms, 3)}  # fmt: skip


# -- 2. and 3. through real processes ---------------------------------------------------------------
def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def worker_pid(master: int) -> int:
    """gunicorn's worker: the child of the functions-framework (arbiter) process."""
    for _ in range(100):
        kids = []
        for task in Path(f"/proc/{master}/task").iterdir():
            kids += (task / "children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return master


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def timed(
    base_url: str, names: list[str], method: str, body: bytes, headers: dict[str, str], seconds: float
) -> dict[str, Any]:
    """CLIENTS keep-alive connections sending `method` to `names` (each its own share, in turn)."""
    load = loadgen.run(base_url, names, method=method, body=body, headers=headers,
                       connections=CLIENTS, seconds=seconds)  # fmt: skip
    assert load.errors == 0, f"{load.errors} answers were not 2xx"
    return {
        "requests": load.requests,
        "p50_ms": load.p50_ms,
        "p95_ms": load.p95_ms,
        "rps": round(load.rps, 1),
    }


def through_processes(seconds: float, base_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coditect-bench-files-") as tmp:
        bench = Bench(Path(tmp))
        try:
            names = ("register", "sessions", "files")
            ports = bench.serve(() if base_url else names)
            parts = urllib.parse.urlsplit(base_url or "")
            addrs = {name: (parts.hostname or "127.0.0.1", parts.port or 80) if base_url
                     else ("127.0.0.1", ports[name]) for name in names}  # fmt: skip
            files_proc = bench.running.get("files")
            host, port = addrs["register"]
            auth = register(f"http://{host}:{port}").headers
            conn = http.client.HTTPConnection(*addrs["sessions"], timeout=60)
            status, body = request(conn, "POST", "/api/v5/sessions", json.dumps({"name": "bench"}).encode(),
                                   {**auth, "Content-Type": "application/json"})  # fmt: skip
            assert status == 201, body
            base = f"/api/v5/sessions/{json.loads(body)['data']['id']}/files"
            addr = addrs["files"]
            results: dict[str, Any] = {"clients": CLIENTS, "seconds": seconds, "tool": loadgen.tool(),
                                       "base_url": base_url}  # fmt: skip
            hello = f"http://127.0.0.1:{ports['hello']}"
            results["hello_get"] = timed(hello, ["/"], "GET", b"", {}, seconds)
            url = f"http://{addr[0]}:{addr[1]}"
            for label, size in (("4k", 4096), ("1m", MiB)):
                body_ = os.urandom(size)
                names = [f"{base}/{label}/f{i}" for i in range(CLIENTS * FILES_PER_CLIENT)]
                conn = http.client.HTTPConnection(*addr, timeout=120)
                for name in names:  # the files to GET, and a first write of each (warm-up)
                    status, _ = request(conn, "PUT", name, body_, auth)
                    assert status in (200, 201), status
                conn.close()
                results[f"put_{label}"] = timed(url, names, "PUT", body_, auth, seconds)
                results[f"get_{label}"] = timed(url, names, "GET", b"", auth, seconds)
            if files_proc is None:
                return results
            pid = worker_pid(files_proc.popen.pid)
            idle_rss = memory_kib(pid, "VmRSS")
            peak_before = memory_kib(pid, "VmHWM")
            conn = http.client.HTTPConnection(*addr, timeout=300)
            conn.putrequest("PUT", f"{base}/huge.bin")
            for k, v in {**auth, "Content-Length": str(100 * MiB)}.items():
                conn.putheader(k, v)
            conn.endheaders()
            started = time.perf_counter()
            piece = os.urandom(MiB)
            for _ in range(100):
                conn.send(piece)
            response = conn.getresponse()
            assert response.status in (200, 201), response.read()[:300]
            response.read()
            upload_s = time.perf_counter() - started
            peak_after = memory_kib(pid, "VmHWM")
            results["upload_100m"] = {"seconds": round(upload_s, 2), "mib_per_s": round(100 / upload_s, 1),
                                      "idle_rss_mib": round(idle_rss / 1024, 1),
                                      "peak_before_mib": round(peak_before / 1024, 1),
                                      "peak_after_mib": round(peak_after / 1024, 1),
                                      "peak_above_idle_mib": round((peak_after - idle_rss) / 1024, 1),
                                      "goal": "< 64 MiB above idle"}  # fmt: skip
            return results
        finally:
            bench.stop()


def ok(passed: bool) -> str:
    return "✅" if passed else "❌"


def latency_table(net: dict[str, Any], where: str, goal: bool) -> list[str]:
    """One latency table of `through_processes`' figures (goal marks on the front door's)."""
    lines = [
        "",
        f"{where}, {net['clients']} concurrent keep-alive clients for {net['seconds']} s each "
        f"({net['tool']}; {CLIENTS * FILES_PER_CLIENT} files per size, each connection or wrk thread "
        f"writing its own share in turn):",
        "",
        "| request | p50 (ms) | p95 (ms) | requests/s | p95 / hello-world p95 |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("hello_get", "hello-world GET / (baseline)"), ("put_4k", "PUT 4 KiB"), ("get_4k", "GET 4 KiB"),
                       ("put_1m", "PUT 1 MiB"), ("get_1m", "GET 1 MiB")):  # fmt: skip
        row = net[key]
        mark = goal and key in ("put_4k", "get_4k")
        verdict = f" {ok(row['p95_ms'] < 50)} (goal < 50)" if mark else ""
        vs_hello = row["p95_ms"] / net["hello_get"]["p95_ms"]
        lines.append(
            f"| {label} | {row['p50_ms']} | {row['p95_ms']}{verdict} | {row['rps']} | {vs_hello:.1f}x |"
        )
    return lines


def through_frontdoor(seconds: float, base_url: str | None) -> dict[str, Any]:
    """Part 2 through a front door: `base_url`'s, or a local stack's started (and stopped) here."""
    if base_url:
        return through_processes(seconds, base_url)
    with tempfile.TemporaryDirectory(prefix="coditect-bench-files-stack-") as tmp:
        proc, url = start_stack(Path(tmp) / "data")
        try:
            return through_processes(seconds, url)
        finally:
            stop(proc)


def markdown(result: dict[str, Any]) -> str:
    ip, net = result["in_process"], result["processes"]
    m, t = ip["mib_per_s"], ip["transactions"]
    lines = [
        f"Machine: {result['machine']}. In-process: 16 MiB, {ip['chunk_bytes']} B chunks, "
        f"chunks per write transaction {ip['chunks_per_write_transaction']}, {ip['read_chunks_per_transaction']} "
        f"per read transaction, synchronous={ip['synchronous']}, best of {ip['rounds']}. Transactions: "
        f"raw write {t['raw_write']}, files write {t['files_write']} (staging + publish), "
        f"raw read {t['raw_read']}, files read {t['files_read']} (open + chunks).",
        "",
        "| 16 MiB | raw sqlite3 (MiB/s) | coditect.files (MiB/s) | ratio (goal ≥ 0.5) |",
        "|---|---|---|---|",
        f"| write | {m['raw_write']} | {m['files_write']} | {ip['write_ratio']:.2f} {ok(ip['write_ratio'] >= 0.5)} |",
        f"| read | {m['raw_read']} | {m['files_read']} | {ip['read_ratio']:.2f} {ok(ip['read_ratio'] >= 0.5)} |",
    ]
    h = result["history"]
    lines += [
        "",
        f"What a file's history costs a write (in-process 4 KiB overwrite, median of {h['rounds']} "
        f"rounds of {h['writes_per_round']}): a file at its retention limit of {h['versions']} versions "
        f"**{h['at_limit_ms']} ms**, a file that keeps 2 (baseline) {h['two_versions_ms']} ms → "
        f"**{h['ratio']:.2f}x** (context; each write drops one version in both).",
    ]
    lines += latency_table(
        result["frontdoor"], f"Through the front door {result['frontdoor']['base_url']}", True
    )
    lines += latency_table(
        net, "Straight to the function processes (context: what the front door adds)", False
    )
    up = net.get("upload_100m")
    if up is None:
        return "\n".join(lines)
    lines += [
        "",
        f"100 MiB PUT: {up['seconds']} s ({up['mib_per_s']} MiB/s); worker RSS idle {up['idle_rss_mib']} MiB, "
        f"peak {up['peak_after_mib']} MiB → **{up['peak_above_idle_mib']} MiB above idle** "
        f"(goal < 64) {ok(up['peak_above_idle_mib'] < 64)}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = arguments(__doc__, "files")
    parser.add_argument(
        "--rounds", type=int, default=7, help="in-process rounds (best of; a round is ~0.3 s)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per latency measurement")
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous for both sides")
    parser.add_argument("--base-url", default=None, help="a running stack's front door (default: start one)")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the start (other work may share the CPUs)",
        "in_process": in_process(args.rounds, args.synchronous.upper()),
        "history": history_cost(args.synchronous.upper(), args.rounds),
        "processes": through_processes(args.seconds, None),
        "frontdoor": through_frontdoor(args.seconds, args.base_url),
    }
    result["title"] = "Files: store vs raw SQLite, 4 KiB and 1 MiB PUT/GET vs hello-world, upload memory"
    result["markdown"] = markdown(result)
    publish(args.out, result)


if __name__ == "__main__":
    main()
