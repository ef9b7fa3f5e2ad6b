"""The `health` job: is the platform serving, and are its backups fresh? (docs/runbook.md lists
every check, what it means and what to do.)

Checks, each `pass` / `warn` / `fail` (or `unknown` when it cannot be evaluated here):

- `store_probe`: write the probe key and read it back in a new transaction; latency in ms
  (warn above `health_probe_warn_ms`); any error fails.
- SQLite only: `sqlite_quick_check` (`PRAGMA quick_check`, the cheap variant of integrity_check,
  on a read-only connection) and `sqlite_wal` (WAL file size; warn above `health_wal_warn_bytes`:
  a checkpoint is being starved by a long reader).
- FoundationDB only: the status document (`\\xff\\xff/status/json`) assessed by
  `fdb_status.assess`, one check per aspect, prefixed `fdb.`.
- `function.<name>`: readiness of every function in `function_urls` (HTTP functions: GET /healthz
  answers 200; CloudEvent/ASGI ones: the port accepts a connection), at every URL it is given
  (production: its Service; the local stack: each of its processes): all ready `pass`, some
  `warn` (degraded: the others serve), none `fail`. No mapping: `unknown`.
- `backup_freshness`: age of the newest *verified* backup vs `backup_max_age` (warn beyond it,
  fail beyond twice it; warn when none was ever verified).

Every `fail` is published as a `com.coditect.ops.alert` event (and logged at ERROR).
"""

from __future__ import annotations

import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from coditect import registry
from coditect.keyspace import PROBE
from coditect.ops import fdb_admin, records
from coditect.ops.runner import BACKUP_AGE, JobContext, Result
from coditect.store import Database
from coditect.store.sqlite import SQLiteDatabase

READINESS_PATH = "/healthz"  # coditect.http.app.READINESS_PATH
_RANK = {"unknown": 0, "pass": 0, "warn": 1, "fail": 2}


def check(name: str, outcome: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "outcome": outcome, "detail": detail, **extra}


def store_probe(db: Database, now: float, warn_ms: float) -> dict[str, Any]:
    started = time.perf_counter()
    stamp = repr(now).encode()
    try:
        db.transact(lambda tr: tr.set(PROBE.key(), stamp))
        back = db.transact(lambda tr: tr.get(PROBE.key()))
    except Exception as exc:  # noqa: BLE001 — every way the store can fail is a failed probe
        return check("store_probe", "fail", f"store write/read failed: {type(exc).__name__}: {exc}")
    ms = round((time.perf_counter() - started) * 1000, 2)
    if back != stamp:
        return check(
            "store_probe", "fail", "the probe value read back differs from the one written", latency_ms=ms
        )
    outcome = "warn" if ms > warn_ms else "pass"
    return check("store_probe", outcome, f"write+read {ms} ms (warn above {warn_ms:.0f} ms)", latency_ms=ms)


def sqlite_checks(path: Path, wal_warn: int) -> list[dict[str, Any]]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
        quick = check("sqlite_quick_check", "pass" if rows == ["ok"] else "fail", "; ".join(rows[:5]))
    except sqlite3.Error as exc:
        quick = check("sqlite_quick_check", "fail", f"cannot check {path}: {exc}")
    wal = Path(f"{path}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    detail = f"WAL {size} bytes (warn above {wal_warn})"
    return [quick, check("sqlite_wal", "warn" if size > wal_warn else "pass", detail, wal_bytes=size)]


def fdb_checks(db: Database) -> list[dict[str, Any]]:
    try:
        report = fdb_admin.health_report(db)
    except Exception as exc:  # noqa: BLE001
        return [check("fdb.status", "fail", f"cannot read the status document: {type(exc).__name__}: {exc}")]
    return [check(f"fdb.{c.name}", c.outcome, c.detail) for c in report.checks]


def readiness(kind: str, url: str) -> tuple[bool, str]:
    """Whether one process (or Service) at `url` of a function of `kind` is ready, and how it answered."""
    try:
        if kind == "http":
            status = httpx.get(url.rstrip("/") + READINESS_PATH, timeout=2.0).status_code
            return status == 200, f"GET {READINESS_PATH} → {status}"
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2.0):
            return True, "port accepts connections"
    except (httpx.HTTPError, OSError) as exc:
        return False, f"unreachable: {type(exc).__name__}"


def function_check(name: str, urls: list[str]) -> dict[str, Any]:
    try:
        kind = registry.function(name).kind
    except KeyError:
        kind = "cloudevent"  # not ours to know: the port answering is all we can ask
    answers = [readiness(kind, url) for url in urls]
    ready = sum(ok for ok, _ in answers)
    outcome = "pass" if ready == len(answers) else "warn" if ready else "fail"
    answered = "; ".join(f"{url} {answer}" for url, (_, answer) in zip(urls, answers, strict=True))
    detail = answers[0][1] if len(answers) == 1 else f"{ready} of {len(answers)} ready: {answered}"
    return check(f"function.{name}", outcome, detail, ready=ready, processes=len(answers))


def function_checks(urls: dict[str, str | list[str]]) -> list[dict[str, Any]]:
    if not urls:
        return [check("functions", "unknown", "no function URLs configured (CODITECT_FUNCTION_URLS)")]
    targets = [(name, [url] if isinstance(url, str) else url) for name, url in sorted(urls.items())]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda item: function_check(*item), targets))


def backup_freshness(db: Database, now: float, max_age: float) -> dict[str, Any]:
    try:
        verified = [r for r in records.backups(db) if r.get("verified_at") and r.get("created_unix")]
    except Exception as exc:  # noqa: BLE001
        return check("backup_freshness", "unknown", f"cannot read backup records: {type(exc).__name__}")
    if not verified:
        return check("backup_freshness", "warn", "no verified backup yet")
    newest = max(verified, key=lambda r: float(r["created_unix"]))
    age = now - float(newest["created_unix"])
    BACKUP_AGE.labels(state="verified").set(age)
    outcome = "pass" if age <= max_age else "warn" if age <= 2 * max_age else "fail"
    detail = (
        f"newest verified backup {newest['id']} is {age / 3600:.1f} h old (policy {max_age / 3600:.1f} h)"
    )
    return check("backup_freshness", outcome, detail, age_seconds=round(age, 1))


def run(ctx: JobContext) -> Result:
    s = ctx.settings
    found = [store_probe(ctx.db, ctx.now, s.health_probe_warn_ms)]
    if isinstance(ctx.db, SQLiteDatabase):
        found += sqlite_checks(ctx.db.path, s.health_wal_warn_bytes)
    if fdb_admin.is_fdb(ctx.db):
        found += fdb_checks(ctx.db)
    found += function_checks(s.function_urls)
    found.append(backup_freshness(ctx.db, ctx.now, s.backup_max_age))
    worst = max((_RANK[c["outcome"]] for c in found), default=0)
    for c in found:
        if c["outcome"] == "fail":
            ctx.alert({"job": "health", "check": c["name"], "outcome": "fail", "detail": c["detail"]})
    counts = {o: float(sum(c["outcome"] == o for c in found)) for o in ("pass", "warn", "fail", "unknown")}
    problems = [f"{c['name']}: {c['detail']}" for c in found if c["outcome"] in ("warn", "fail")]
    status = ("ok", "warn", "failed")[worst]
    return Result(status, counts, "; ".join(problems)[:500] or "all checks pass", {"checks": found})  # type: ignore[arg-type]
