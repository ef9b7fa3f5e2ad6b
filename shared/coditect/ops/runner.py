"""Running one cron job: lease, budget, outcome record, one summary log line, metrics, alerts.

    result = run_job("gc", db)                        # the cron function and the CLI both call this

Contract for a job's runner (`coditect.ops.jobs.JOBS[...].runner`), `run(ctx) -> Result`:

- idempotent: running it twice, or concurrently with a crashed earlier run, is harmless;
- bounded: it checks `ctx.expired()` between bounded steps and returns `incomplete` when the
  budget is spent; the next run resumes (durable work lists or `records.progress_key`);
- it returns counts (numbers only) and a one-line detail; raising records `failed` (and alerts);
  a job that returns `failed` itself has published its own, more precise alert.

Only one run of a job at a time: a lease in the store (`records.acquire_lease`) makes a run that
finds another one in progress answer `skipped` (a redelivered or overlapping cron event). A job
that fails, and every failing health check, is published as a `com.coditect.ops.alert` CloudEvent
to `K_SINK` and logged at ERROR.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from coditect import event_types
from coditect.config import Settings, get_settings
from coditect.http import metrics
from coditect.ops import records
from coditect.ops.jobs import job
from coditect.registry.spec import resolve
from coditect.store import Database

log = logging.getLogger("coditect.ops")
Status = Literal["ok", "warn", "failed", "incomplete", "skipped"]
AlertSink = Callable[[dict[str, Any]], None]
ALERT_SOURCE = "/coditect/ops"

JOB_RUNS = metrics.counter("ops_job_runs", "Cron job runs, by job and outcome.", ["job", "outcome"])
JOB_SECONDS = metrics.histogram(
    "ops_job_duration_seconds", "Duration of a cron job run.", ["job"],
    buckets=(0.05, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)  # fmt: skip
JOB_LAST_OK = metrics.gauge(
    "ops_job_last_success_timestamp_seconds", "Unix time of the job's last ok/warn run.", ["job"]
)
BACKUP_AGE = metrics.gauge(
    "backup_age_seconds", "Age of the newest backup (state=taken) and newest verified one.", ["state"]
)


@dataclass
class Result:
    status: Status = "ok"
    counts: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # recorded as is (e.g. health checks)


@dataclass
class JobContext:
    db: Database
    settings: Settings
    now: float  # wall-clock time of the run (injectable for tests)
    deadline: float  # time.monotonic() after which the job stops and resumes next run
    alert: AlertSink

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def publish_alert(alert: dict[str, Any]) -> None:
    """Log an alert at ERROR and publish it to K_SINK (logged, not raised, when undeliverable)."""
    log.error("ops alert", extra={"fields": alert})
    if not get_settings().sink:
        log.warning(
            "ops alert not published: K_SINK is not set", extra={"fields": {"check": alert.get("check")}}
        )
        return
    from coditect.events import PublishError, publish

    try:
        publish(event_types.ALERT, ALERT_SOURCE, alert, subject=str(alert.get("check", "")))
    except PublishError as exc:
        log.warning("ops alert not delivered", extra={"fields": {"error": str(exc)}})


def run_job(
    name: str,
    db: Database,
    *,
    settings: Settings | None = None,
    now: float | None = None,
    budget: float | None = None,
    alert: AlertSink | None = None,
    trigger: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run job `name` once and return the record written under `records.job_key(name)`."""
    spec = job(name)
    settings = settings or get_settings()
    budget = settings.ops_job_budget if budget is None else budget
    sink = alert or publish_alert
    started_wall = time.time() if now is None else now
    started = time.monotonic()
    holder = uuid.uuid4().hex
    record: dict[str, Any] = {"job": name, "started_at": rfc3339(started_wall), "trigger": trigger or {}}
    try:
        leased = records.acquire_lease(db, name, holder, budget * 2 + 60, now=started_wall)
    except Exception as exc:  # noqa: BLE001 — a store that cannot even take a lease: the job still runs
        leased, record["lease_error"] = True, f"{type(exc).__name__}: {exc}"
    if not leased:
        record.update(outcome="skipped", detail="another run of this job holds the lease", counts={})
        _finish(name, record, started, write=None)
        return record
    try:
        ctx = JobContext(db, settings, started_wall, started + budget, sink)
        result: Result = resolve(spec.runner)(ctx)
    except Exception as exc:
        log.exception("cron job failed", extra={"fields": {"job": name}})
        result = Result("failed", detail=f"{type(exc).__name__}: {exc}")
        sink({"job": name, "check": f"job.{name}", "outcome": "fail", "detail": result.detail})
    record.update(outcome=result.status, counts=result.counts, detail=result.detail, **result.data)
    _finish(name, record, started, write=db)
    try:
        records.release_lease(db, name, holder)
    except Exception:  # noqa: BLE001 — it expires on its own
        log.warning("cron job lease not released", extra={"fields": {"job": name}})
    return record


def _finish(name: str, record: dict[str, Any], started: float, write: Database | None) -> None:
    duration = time.monotonic() - started
    record.update(finished_at=rfc3339(time.time()), duration_seconds=round(duration, 3))
    outcome = str(record["outcome"])
    if write is not None:
        try:
            write.transact(records.put, records.job_key(name), record)
        except Exception as exc:  # noqa: BLE001 — e.g. the failing store the health job reports
            record["record_error"] = f"{type(exc).__name__}: {exc}"
    JOB_RUNS.labels(job=name, outcome=outcome).inc()
    JOB_SECONDS.labels(job=name).observe(duration)
    if outcome in ("ok", "warn"):
        JOB_LAST_OK.labels(job=name).set(time.time())
    summary = {k: record.get(k) for k in ("job", "outcome", "duration_seconds", "counts", "detail")}
    summary["trigger_id"] = record["trigger"].get("id")  # which event ran it (or found it leased)
    if "record_error" in record:
        summary["record_error"] = record["record_error"]
    (log.error if outcome == "failed" else log.info)("cron job", extra={"fields": summary})
