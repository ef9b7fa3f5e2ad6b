"""The local scheduler: the Knative PingSources of the local stack.

For every job of `SCHEDULES` it sleeps until the next firing time (croniter, UTC) and POSTs a
binary-mode CloudEvent `com.coditect.ops.cron` `{"job": name}` to the broker — over HTTP, the way
a PingSource reaches the Broker, so the broker's retry and dead-letter path applies to it too.
A firing the broker does not accept (unreachable, or an error answer — say its disk is full) is
kept in memory and sent again every `retry_interval` seconds until accepted (at most
`MAX_BACKLOG` firings per job; the oldest are dropped, counted in `dropped`): cron jobs are
idempotent, so a late or repeated firing is harmless, a lost one is not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from croniter import croniter

from coditect import event_types

log = logging.getLogger("coditect.devstack.scheduler")
SOURCE = "/coditect/devstack/scheduler"
MAX_BACKLOG = 10


def cron_event(job: str, when: datetime) -> CloudEvent:
    attributes = {
        "type": event_types.CRON,
        "source": f"{SOURCE}/{job}",
        "id": str(uuid.uuid4()),
        "time": when.isoformat(),
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, {"job": job})


def next_fire(expression: str, after: datetime) -> datetime:
    fire: datetime = croniter(expression, after).get_next(datetime)
    return fire


class Scheduler:
    """Fires every job of `schedules` at `sink` until `stop()`; `fired` counts per job."""

    def __init__(self, schedules: Mapping[str, str], sink: str, *, retry_interval: float = 5.0) -> None:
        for job, expression in schedules.items():
            if not croniter.is_valid(expression):
                raise ValueError(f"invalid cron expression for job {job!r}: {expression!r}")
        self.schedules = dict(schedules)
        self.sink = sink
        self.fired: dict[str, int] = dict.fromkeys(schedules, 0)
        self.retry_interval = retry_interval
        self.backlog: dict[str, list[datetime]] = {job: [] for job in schedules}  # not yet accepted
        self.dropped = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run(job, expr)) for job, expr in self.schedules.items()]
        self._tasks.append(asyncio.ensure_future(self._retry()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def fire(self, job: str, when: datetime | None = None) -> bool:
        """Send one firing of `job` now; True when the broker accepted it."""
        headers, body = to_binary(cron_event(job, when or datetime.now(UTC)))
        headers["content-type"] = "application/json"
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(self.sink, headers=headers, content=body or b"")
        except httpx.HTTPError as exc:
            log.warning("scheduler: job %s: broker unreachable: %r", job, exc)
            return False
        self.fired[job] += 1
        log.info("scheduler: fired %s (broker answered %d)", job, response.status_code)
        return response.status_code < 300

    async def _run(self, job: str, expression: str) -> None:
        while True:
            when = next_fire(expression, datetime.now(UTC))
            await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))
            if not await self.fire(job, when):
                self.keep(job, when)

    def keep(self, job: str, when: datetime) -> None:
        """Hold a firing the broker did not accept, to send again."""
        backlog = self.backlog[job]
        if len(backlog) >= MAX_BACKLOG:
            backlog.pop(0)
            self.dropped += 1
        backlog.append(when)

    async def retry_backlog(self) -> None:
        """Send every held firing once more, oldest first; keep those still not accepted."""
        for job, backlog in self.backlog.items():
            while backlog:
                if not await self.fire(job, backlog[0]):
                    break
                backlog.pop(0)

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            await self.retry_backlog()
