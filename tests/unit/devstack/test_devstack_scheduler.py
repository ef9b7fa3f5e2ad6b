"""The local scheduler: the schedule table, the production PingSources, and one real firing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from croniter import croniter

from coditect.devstack.broker import Broker, Subscriber
from coditect.devstack.scheduler import Scheduler, next_fire
from coditect.devstack.schedules import CRON_EVENT_TYPE, SCHEDULES
from coditect.devstack.servers import Served, bind

ROOT = Path(__file__).resolve().parents[3]


def test_every_schedule_is_a_valid_cron_expression() -> None:
    assert SCHEDULES
    assert all(croniter.is_valid(expression) for expression in SCHEDULES.values())


def test_the_local_schedules_are_the_production_pingsources() -> None:
    documents = yaml.safe_load_all((ROOT / "infra/base/eventing/ping-sources.yaml").read_text())
    production = {
        json.loads(doc["spec"]["data"])["job"]: doc["spec"]["schedule"]
        for doc in documents
        if doc and doc.get("kind") == "PingSource"
    }
    assert production == SCHEDULES


def test_next_fire_is_utc_cron() -> None:
    after = datetime(2025, 1, 1, 10, 16, 30, tzinfo=UTC)
    assert next_fire("17 * * * *", after) == datetime(2025, 1, 1, 10, 17, tzinfo=UTC)


def test_a_firing_reaches_the_cron_subscriber_through_the_broker(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []

    async def cron_function(scope: dict[str, object], receive: object, send: object) -> None:
        """A stand-in for the cron function: records the CloudEvent headers and body."""
        if scope["type"] != "http":
            return
        message = await receive()  # type: ignore[operator]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}  # type: ignore[attr-defined]
        received.append({"type": headers["ce-type"], "body": json.loads(message["body"])})
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    async def go() -> None:
        function = Served(cron_function, bind("127.0.0.1", 0), access_log=False)
        await function.start()
        broker = Broker(
            {CRON_EVENT_TYPE: [Subscriber("cron", f"http://127.0.0.1:{function.port}/")]}, tmp_path / "dead"
        )
        broker_server = Served(broker, bind("127.0.0.1", 0), access_log=False)
        await broker_server.start()
        scheduler = Scheduler({"gc": "*/15 * * * *"}, f"http://127.0.0.1:{broker_server.port}/")
        assert await scheduler.fire("gc")
        while broker.pending or not received:
            await asyncio.sleep(0.01)
        await broker_server.stop()
        await function.stop()
        assert scheduler.fired == {"gc": 1}

    asyncio.run(go())
    assert received == [{"type": CRON_EVENT_TYPE, "body": {"job": "gc"}}]
