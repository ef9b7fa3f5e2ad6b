"""The cron function's logic: which job a cron CloudEvent names, and running it.

Two event shapes reach the cron function (infra/README.md, "Cron events and their type"):

- type `com.coditect.ops.cron`, data `{"job": name}` — the local scheduler, manual runs;
- type `dev.knative.sources.ping` with extension `coditecttype: com.coditect.ops.cron`, data
  `{"job": name}` — a Knative PingSource (which cannot choose its type).

An event that names no known job is logged and acked (a redelivery cannot fix it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cloudevents.http import CloudEvent

from coditect.event_types import CRON, PING
from coditect.ops.jobs import JOBS
from coditect.ops.runner import run_job
from coditect.store import Database

log = logging.getLogger("coditect.ops")


class NotACronEvent(ValueError):
    """The event is not a cron firing this function understands."""


def job_of(event: CloudEvent) -> str:
    kind = event["type"]
    if kind == PING:
        if event.get("coditecttype") != CRON:
            raise NotACronEvent(f"a ping without coditecttype={CRON}")
    elif kind != CRON:
        raise NotACronEvent(f"unexpected event type {kind!r}")
    data: Any = event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            raise NotACronEvent("data is not JSON") from None
    name = data.get("job") if isinstance(data, dict) else None
    if name not in JOBS:
        raise NotACronEvent(f"data names no known job: {name!r} (known: {', '.join(JOBS)})")
    return str(name)


def handle(db: Database, event: CloudEvent) -> dict[str, Any] | None:
    """Run the job the event names; None (logged) when it names none."""
    try:
        name = job_of(event)
    except NotACronEvent as exc:
        log.error(
            "cron: event ignored: %s", exc, extra={"fields": {"id": event["id"], "type": event["type"]}}
        )
        return None
    return run_job(name, db, trigger={"source": str(event["source"]), "id": str(event["id"])})
