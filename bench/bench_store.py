"""Store overhead against raw sqlite3 on the same file settings (WAL, same synchronous level).

    .venv/bin/python bench/bench_store.py [--out bench/results/store.json] [--seconds 2] [--synchronous FULL]

Three figures, each measured for both the store (SQLite backend, through `db.transact`) and raw
`sqlite3` on an identical table in its own file, alternating in short slices over several
rounds; figures and ratios are medians over the rounds:

- single-key write transactions per second (store: `transact(set)`; raw: one autocommit INSERT),
- point reads per second (store: `db.read(key)`, the API for a transaction of exactly one read,
  which the request hot path uses; raw: one autocommit SELECT); `transact(get)` — the general
  transaction machinery for one read — is reported beside it as context,
- 1,000-key range reads per second (store: `transact(get_range)`; raw: one SELECT … ORDER BY).

Context for writes: the statements a store commit runs (BEGIN IMMEDIATE, the key, COMMIT) in a
plain loop on the store's schema, against the same raw INSERT — the ceiling of the store's write
ratio, whatever its Python costs.

Goal (issue 14): store / raw ≥ 0.8 for each. Prints a markdown table and writes JSON to `--out`.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import fdb.tuple as fdbtuple
from run import arguments, publish  # bench/ is not a package

from coditect.store import Transaction, open_store
from coditect.store.sqlite import SCHEMA

N_KEYS = 5_000
RANGE = 1_000
VALUE = b"v" * 100
GOAL = 0.8


def rate(fn: Callable[[int], None], seconds: float) -> float:
    """Operations per second of `fn(i)` over about `seconds`."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn(done)
            done += 1
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    return conn


def commit_sql(
    path: Path, synchronous: str, write_keys: list[bytes]
) -> tuple[sqlite3.Connection, Callable[[int], None]]:
    """A plain loop of a single-key store commit's statements on the store's schema: the ceiling
    of write_tx_per_s (the store's own machinery is the gap to it)."""
    conn = raw_connection(path, synchronous)
    conn.executescript(SCHEMA)

    def write(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (write_keys[i % len(write_keys)], VALUE))
        conn.execute("COMMIT")

    return conn, write


def main() -> int:
    parser = arguments(__doc__, "store")
    parser.add_argument("--seconds", type=float, default=0.8, help="per measurement per side per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    args = parser.parse_args()

    keys = [fdbtuple.pack(("bench", i)) for i in range(N_KEYS)]
    write_keys = [fdbtuple.pack(("bench-w", i)) for i in range(200_000)]
    range_begin, range_end = keys[1000], keys[1000 + RANGE]

    with tempfile.TemporaryDirectory() as tmp:
        db = open_store(f"sqlite://{tmp}/store.db?synchronous={args.synchronous}")
        raw = raw_connection(Path(tmp) / "raw.db", args.synchronous)

        def load(tr: Transaction) -> None:
            for k in keys:
                tr.set(k, VALUE)

        db.transact(load)
        raw.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", [(k, VALUE) for k in keys])

        def store_write(i: int) -> None:
            db.transact(lambda tr: tr.set(write_keys[i % len(write_keys)], VALUE))

        def raw_write(i: int) -> None:
            raw.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (write_keys[i % len(write_keys)], VALUE))

        # Context: the statements a store commit runs with no Python around them, with and
        # without the counter and the commit-log row (see `commit_sql`), and as one statement.
        floor, sql_floor_write = commit_sql(Path(tmp) / "floor.db", args.synchronous, write_keys)

        def store_read(i: int) -> None:
            db.read(keys[i % N_KEYS])

        def store_transact_read(i: int) -> None:
            db.transact(lambda tr: tr.get(keys[i % N_KEYS]))

        def raw_read(i: int) -> None:
            raw.execute("SELECT value FROM kv WHERE key = ?", (keys[i % N_KEYS],)).fetchone()

        def store_range(_: int) -> None:
            got = db.transact(lambda tr: tr.get_range(range_begin, range_end))
            assert len(got) == RANGE

        def raw_range(_: int) -> None:
            got = raw.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key", (range_begin, range_end)
            ).fetchall()
            assert len(got) == RANGE

        cases = {
            "write_tx_per_s": (store_write, raw_write),
            "write_tx_per_s, the commit's SQL alone (context: the ceiling)": (sql_floor_write, raw_write),
            "point_reads_per_s": (store_read, raw_read),
            "point_reads_transact_get_per_s (context)": (store_transact_read, raw_read),
            "range_1000_reads_per_s": (store_range, raw_range),
        }
        # Store and raw alternate in short slices, so load from other processes on the machine
        # hits both sides alike; the reported ratio is the median of the per-round ratios.
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (store_fn, raw_fn) in cases.items():
                rounds[name].append((rate(store_fn, args.seconds), rate(raw_fn, args.seconds)))
        db.close()
        raw.close()
        floor.close()

    results = {}
    for name, pairs in rounds.items():
        ratio = statistics.median(s / r for s, r in pairs)
        results[name] = {
            "store": statistics.median(s for s, _ in pairs),
            "raw": statistics.median(r for _, r in pairs),
            "ratio": ratio,
            "round_ratios": [round(s / r, 3) for s, r in pairs],
            "meets_goal": ratio >= GOAL or "context" in name,
        }
    report = {
        "synchronous": args.synchronous,
        "seconds_per_measurement": args.seconds,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.platform(),
        "goal_ratio": GOAL,
        "results": results,
    }
    lines = [
        f"Store vs raw sqlite3 on the same file settings (WAL, synchronous={args.synchronous}), median of "
        f"{args.rounds} alternating rounds; load average {os.getloadavg()[0]:.1f} at the end (other work "
        "may share the CPUs and the disk).",
        "",
        f"| measure | store | raw sqlite3 | ratio store/raw (goal ≥ {GOAL}) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        flag = "" if "context" in name else "✅" if r["meets_goal"] else "❌"
        lines.append(f"| {name} | {r['store']:,.0f} | {r['raw']:,.0f} | {r['ratio']:.2f} {flag} |")
    report["title"] = "Store (SQLite backend) vs raw sqlite3"
    report["markdown"] = "\n".join(lines)
    publish(args.out, report)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
