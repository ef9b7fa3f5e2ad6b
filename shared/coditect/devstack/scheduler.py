"""The local scheduler: the Knative PingSources of the local stack.

For every job of `SCHEDULES` it sleeps until the next firing time (croniter, UTC) and POSTs a
binary-mode CloudEvent `com.coditect.ops.cron` `{"job": name}` to the broker — over HTTP, the way
a PingSource reaches the Broker, so the broker's retry and dead-letter path applies to it too.
A firing that cannot reach the broker is logged and skipped, as a PingSource would.
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

    def __init__(self, schedules: Mapping[str, str], sink: str) -> None:
        for job, expression in schedules.items():
            if not croniter.is_valid(expression):
                raise ValueError(f"invalid cron expression for job {job!r}: {expression!r}")
        self.schedules = dict(schedules)
        self.sink = sink
        self.fired: dict[str, int] = dict.fromkeys(schedules, 0)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._run(job, expr)) for job, expr in self.schedules.items()]

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
            await self.fire(job, when)
