"""run_job: outcome records, leases, alerts; the health job on a good and on a failing store."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coditect.config import Settings
from coditect.http import metrics
from coditect.ops import records
from coditect.ops.runner import run_job
from coditect.store import open_store
from coditect.store.sqlite import SQLiteDatabase


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, function_urls={})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteDatabase]:
    store = open_store(f"sqlite://{tmp_path / 'store.db'}")
    assert isinstance(store, SQLiteDatabase)
    yield store
    store.close()


def test_health_on_a_good_store_records_its_checks(db: SQLiteDatabase, settings: Settings) -> None:
    alerts: list[dict[str, Any]] = []
    record = run_job("health", db, settings=settings, alert=alerts.append)
    names = {c["name"]: c for c in record["checks"]}
    assert names["store_probe"]["outcome"] == "pass" and names["store_probe"]["latency_ms"] >= 0
    assert names["sqlite_quick_check"]["outcome"] == "pass"
    assert names["sqlite_wal"]["outcome"] == "pass"
    assert names["functions"]["outcome"] == "unknown"
    assert names["backup_freshness"]["outcome"] == "warn"  # never verified
    assert record["outcome"] == "warn" and alerts == []
    stored = records.read(db, records.job_key("health"))
    assert stored is not None and stored["outcome"] == "warn" and stored["duration_seconds"] >= 0
    assert records.job_runs(db)["health"]["started_at"] == record["started_at"]
    text = metrics.exposition()[0].decode()
    assert 'coditect_ops_job_runs_total{job="health",outcome="warn"}' in text


def test_health_reports_a_failing_store_and_alerts(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "broken.db"
    broken = open_store(f"sqlite://{path}")
    broken.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 512)
    alerts: list[dict[str, Any]] = []
    record = run_job("health", broken, settings=settings, alert=alerts.append)
    assert record["outcome"] == "failed"
    checks = {c["name"]: c for c in record["checks"]}
    assert checks["store_probe"]["outcome"] == "fail" and "DatabaseError" in checks["store_probe"]["detail"]
    assert checks["sqlite_quick_check"]["outcome"] == "fail"
    assert {a["check"] for a in alerts} >= {"store_probe", "sqlite_quick_check"}
    assert all(a["outcome"] == "fail" and a["job"] == "health" for a in alerts)
    assert "record_error" in record  # the outcome could not be stored: it is logged instead


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoints() -> Iterator[tuple[str, str]]:
    """(up, down): the URL of a server whose /healthz answers 200, and of a closed port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready) as closed:
        down = f"http://127.0.0.1:{closed.server_address[1]}"
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", down
    finally:
        server.shutdown()
        server.server_close()


def _health(
    db: SQLiteDatabase, tmp_path: Path, urls: dict[str, str | list[str]]
) -> tuple[dict[str, Any], list[str]]:
    """The health job's record with these function URLs, and the names of the checks it alerted."""
    alerts: list[dict[str, Any]] = []
    record = run_job(
        "health", db, settings=Settings(data_dir=tmp_path, function_urls=urls), alert=alerts.append
    )
    return record, [a["check"] for a in alerts]


def test_function_readiness_pass_and_fail(
    db: SQLiteDatabase, tmp_path: Path, endpoints: tuple[str, str]
) -> None:
    up, down = endpoints
    record, alerted = _health(db, tmp_path, {"health": up, "sessions": down, "provisioner": up})
    checks = {c["name"]: c for c in record["checks"]}
    assert checks["function.health"]["outcome"] == "pass"
    assert (checks["function.health"]["detail"], checks["function.health"]["processes"]) == (
        "GET /healthz → 200",
        1,
    )
    assert checks["function.provisioner"]["outcome"] == "pass"  # a CloudEvent function: TCP
    assert checks["function.sessions"]["outcome"] == "fail"
    assert alerted == ["function.sessions"]


def test_function_readiness_is_checked_at_every_process(
    db: SQLiteDatabase, tmp_path: Path, endpoints: tuple[str, str]
) -> None:
    """The local stack runs replicas: one dead process degrades its function (warn, no alert),
    all of them dead fail it; each process is named in the detail."""
    up, down = endpoints
    record, alerted = _health(
        db, tmp_path, {"health": [up, up], "files": [up, down], "sessions": [down, down]}
    )
    checks = {c["name"]: c for c in record["checks"]}
    assert (checks["function.health"]["outcome"], checks["function.health"]["ready"]) == ("pass", 2)
    files = checks["function.files"]
    assert (files["outcome"], files["ready"], files["processes"]) == ("warn", 1, 2)
    assert f"{up} GET /healthz → 200" in files["detail"] and f"{down} unreachable" in files["detail"]
    assert (checks["function.sessions"]["outcome"], checks["function.sessions"]["ready"]) == ("fail", 0)
    assert record["outcome"] == "failed"
    assert alerted == ["function.sessions"]


def test_a_held_lease_skips_the_run_and_a_crash_is_recorded(
    db: SQLiteDatabase, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert records.acquire_lease(db, "gc", "someone-else", 600)
    skipped = run_job("gc", db, settings=settings)
    assert skipped["outcome"] == "skipped"
    assert records.read(db, records.job_key("gc")) is None  # a skip does not overwrite the last run
    records.release_lease(db, "gc", "someone-else")

    def boom(ctx: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("coditect.ops.maintenance.gc", boom)
    alerts: list[dict[str, Any]] = []
    crashed = run_job("gc", db, settings=settings, alert=alerts.append)
    assert crashed["outcome"] == "failed" and "disk on fire" in crashed["detail"]
    assert alerts == [
        {"job": "gc", "check": "job.gc", "outcome": "fail", "detail": "RuntimeError: disk on fire"}
    ]
    assert records.read(db, records.job_key("gc"))["outcome"] == "failed"  # type: ignore[index]
    assert records.acquire_lease(db, "gc", "next-run", 600)  # the crashed run released its lease
