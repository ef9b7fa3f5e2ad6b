"""Ops benchmark: backup and verify of a large store, and writers during a backup.

    python bench/bench_ops.py --out bench/results/ops.json [--size-mib 1024]

1. A store of `--size-mib` (default 1 GiB) is generated directly into the SQLite store's `kv`
   table (the store's own schema, created by `open_store`; bulk INSERTs, because 1 GiB through
   the store API's 10 MB transactions would dominate the run): ~50 KB file chunks keyed like the
   files area's (`("t", tid, "fchunks", sha256)`, so verify re-hashes every one), half random and
   half repetitive bytes (zstd gets ~2x, like source trees).
2. `take_backup` (online snapshot through the backup API with the default step/sleep, per-range
   checksums, zstd) and `verify_backup` (file checksums, decompress, integrity_check, range
   checksums, record checks): wall time, raw and compressed size.
3. Store write throughput (one writer thread, the store API, one 1 KiB key per transaction,
   default `synchronous=FULL`) alone vs while a backup runs in another process, same run, same
   duration. Goal: ratio ≥ 0.7.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from run import arguments, publish  # bench/ is not a package

from coditect import keyspace
from coditect.config import Settings
from coditect.ops.backup import take_backup
from coditect.ops.verify import verify_backup
from coditect.store import Database, open_store

MiB = 1024 * 1024
VALUE = 50_000


def generate(path: Path, size_mib: int) -> int:
    open_store(f"sqlite://{path}").close()
    space = keyspace.tenant(str(uuid.uuid4())).sub(keyspace.FILE_CHUNKS)
    rows = size_mib * MiB // VALUE
    conn = sqlite3.connect(path)
    filler = b"def handler(event):\n    return event\n" * (VALUE // 2 // 38 + 1)
    batch = []
    for _ in range(rows):
        value = os.urandom(VALUE // 2) + filler[: VALUE - VALUE // 2]
        batch.append((space.key(hashlib.sha256(value).digest()), value))
        if len(batch) == 500:
            conn.executemany("INSERT INTO kv VALUES (?, ?)", batch)
            batch = []
    conn.executemany("INSERT INTO kv VALUES (?, ?)", batch)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return rows


def write_for(db: Database, seconds: float, stop: threading.Event | None = None) -> tuple[int, float]:
    """Commit one 1 KiB key per transaction for `seconds` (or until `stop`); (commits, elapsed)."""
    value = os.urandom(1024)
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and not (stop and stop.is_set()):
        key = keyspace.GLOBAL.key("bench", n, uuid.uuid4().hex)
        db.transact(lambda tr, k=key: tr.set(k, value))
        n += 1
    return n, time.perf_counter() - started


def main() -> int:
    parser = arguments(__doc__, "ops")
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        data = Path(tmp) / "data"
        store = data / "store.db"
        t0 = time.perf_counter()
        rows = generate(store, args.size_mib)
        gen_s = time.perf_counter() - t0
        settings = Settings(data_dir=data)
        db = open_store(f"sqlite://{store}")

        t0 = time.perf_counter()
        info = take_backup(db, settings, time.time())
        backup_s = time.perf_counter() - t0
        assert info is not None and info.manifest is not None
        t0 = time.perf_counter()
        report = verify_backup(info, scratch_root=Path(tmp))
        verify_s = time.perf_counter() - t0
        assert report.ok, report.reason

        # writers alone, then while a backup process runs (same duration as that backup took)
        env = {**os.environ, "CODITECT_DATA_DIR": str(data)}
        env.pop("CODITECT_STORE", None)
        write_for(db, 1.0)  # warm-up
        started = time.perf_counter()
        backup = subprocess.Popen([sys.executable, "-m", "coditect.ops", "backup"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        done = threading.Event()
        threading.Thread(target=lambda: (backup.wait(), done.set()), daemon=True).start()
        during, during_s = write_for(db, 600.0, stop=done)
        online_backup_s = time.perf_counter() - started
        alone, alone_s = write_for(db, during_s)
        rate_alone, rate_during = alone / alone_s, during / during_s
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "store": {"size_mib": args.size_mib, "rows": rows, "generate_seconds": round(gen_s, 1),
                  "generated_with": "bulk INSERT into the kv table (store schema)"},
        "backup": {"seconds": round(backup_s, 2), "raw_bytes": info.manifest.raw_bytes, "compressed_bytes": info.size,
                   "keys": info.manifest.key_count, "ratio": round(info.manifest.raw_bytes / max(info.size, 1), 2)},
        "verify": {"seconds": round(verify_s, 2), "checked": report.checked},
        "writes": {"alone_per_s": round(rate_alone, 1), "during_backup_per_s": round(rate_during, 1),
                   "ratio": round(rate_during / rate_alone, 3), "goal": 0.7, "window_s": round(during_s, 2),
                   "online_backup_seconds": round(online_backup_s, 2)},
        "backup_step": {"pages": settings.backup_step_pages, "sleep_s": settings.backup_step_sleep},
    }  # fmt: skip
    b, v, w = result["backup"], result["verify"], result["writes"]
    result["title"] = "Operations: backup and verify of a large store, writes during a backup"
    result["markdown"] = "\n".join([
        f"| {args.size_mib} MiB store ({rows} keys) | value |",
        "|---|---|",
        f"| backup (snapshot + checksums + zstd) | {b['seconds']} s, {b['compressed_bytes'] / MiB:.0f} MiB "
        f"of {b['raw_bytes'] / MiB:.0f} MiB ({b['ratio']}x) |",
        f"| verify (restore to scratch + all checks) | {v['seconds']} s |",
        f"| writes/s alone vs during a backup | {w['alone_per_s']} vs {w['during_backup_per_s']} "
        f"→ **{w['ratio']}x** (goal ≥ 0.7) |",
    ])  # fmt: skip
    publish(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
