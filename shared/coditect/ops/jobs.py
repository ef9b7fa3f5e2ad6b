"""The cron job registry: every job's name, schedule and runner, in ONE table.

Light on purpose (no area is imported here): the local scheduler reads `SCHEDULES` from it
(`coditect.devstack.scheduler`), production runs the same table as Knative PingSources
(infra/base/eventing/ping-sources.yaml, rendered from this table by coditect.deploy.eventing),
and the cron function and the CLI (`python -m coditect.ops run <job>`) resolve a runner only when
they run it:

    from coditect.ops.runner import run_job
    result = run_job("gc", db)            # one bounded, recorded, logged run

A runner is `run(ctx: JobContext) -> Outcome` ("package.module:function"); see
`coditect.ops.runner` for what every run gets and what it must do (idempotent, bounded by
`ctx.deadline`, resumable next run).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str  # UTC cron expression
    runner: str  # "package.module:function", imported when the job runs
    summary: str


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("health", "* * * * *", "coditect.ops.health:run",
            "store probe, FoundationDB status, function readiness, backup freshness; alerts on failure"),
        Job("backup", "17 * * * *", "coditect.ops.backup:run",
            "snapshot (SQLite) or logical export (FoundationDB) with a manifest; retention"),
        Job("verify", "47 * * * *", "coditect.ops.verify:run",
            "restore the newest backup into scratch space, check it, record verified_at"),
        Job("reconcile", "* * * * *", "coditect.ops.maintenance:reconcile",
            "workspaces: orphans both ways, idle stop, max lifetime; outbox re-drain"),
        Job("gc", "*/15 * * * *", "coditect.ops.maintenance:gc",
            "file chunks/uploads, session purges, tickets, throttles, refresh families, dedupe marks"),
    )
}  # fmt: skip

# job → cron expression: what the local scheduler fires (and what the PingSources must say).
SCHEDULES: dict[str, str] = {name: job.schedule for name, job in JOBS.items()}


def job(name: str) -> Job:
    """The job called `name`; KeyError naming the known jobs otherwise."""
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"no cron job {name!r}; known: {', '.join(JOBS)}") from None
