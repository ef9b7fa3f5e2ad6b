"""The local broker: ingress of both CloudEvent modes, delivery, retries and the dead-letter log.

Subscribers are real HTTP servers on loopback answering a scripted list of statuses.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.http import CloudEvent

from coditect.devstack.broker import Broker, Subscriber, logical_type, subscriptions_of
from coditect.devstack.plan import free_port

TYPE = "com.coditect.test.thing"


class Scripted:
    """A subscriber answering `statuses` in turn (the last one forever); records what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                script.received.append({"headers": dict(self.headers), "body": body})
                status = script.statuses[min(len(script.received), len(script.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[Any]:
    made: list[Scripted] = []

    def make(*statuses: int) -> Scripted:
        made.append(Scripted(list(statuses)))
        return made[-1]

    yield make
    for server in made:
        server.server.shutdown()
        server.server.server_close()  # shutdown() only stops the loop; this closes the listening socket


def run_deliveries(broker: Broker, *events: CloudEvent) -> None:
    async def go() -> None:
        for event in events:
            broker.publish(event)
        while broker.pending:
            await asyncio.gather(*broker.pending)
        await broker.aclose()

    asyncio.run(go())


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def event(data: Any = None, **attributes: str) -> CloudEvent:
    return CloudEvent({"type": TYPE, "source": "/test", **attributes}, data if data is not None else {"n": 1})


def broker_for(subscriber_url: str, dead: Path, attempts: int = 4) -> Broker:
    return Broker({TYPE: [Subscriber("sub", subscriber_url)]}, dead, attempts=attempts, backoff=0.01)


def test_delivery_is_binary_mode_with_the_data(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(200)
    e = event({"hello": "world"})
    broker = broker_for(sub.url, tmp_path / "dead.jsonl")
    run_deliveries(broker, e)
    (got,) = sub.received
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert headers["ce-id"] == e["id"] and headers["ce-type"] == TYPE and headers["ce-source"] == "/test"
    assert headers["content-type"] == "application/json"
    assert json.loads(got["body"]) == {"hello": "world"}
    assert broker.delivered == 1 and not dead_letters(tmp_path / "dead.jsonl")


def test_5xx_is_retried_until_it_succeeds(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(500, 503, 200)
    broker = broker_for(sub.url, tmp_path / "dead.jsonl")
    run_deliveries(broker, event())
    assert len(sub.received) == 3
    assert broker.delivered == 1 and broker.dead == 0
    assert not dead_letters(tmp_path / "dead.jsonl")


def test_exhausted_retries_go_to_the_dead_letter_log(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(500)
    e = event({"k": "v"})
    run_deliveries(broker_for(sub.url, tmp_path / "dead.jsonl", attempts=3), e)
    assert len(sub.received) == 3
    (record,) = dead_letters(tmp_path / "dead.jsonl")
    assert record["subscriber"] == "sub" and record["attempts"] == 3 and record["reason"] == "HTTP 500"
    assert record["event"]["id"] == e["id"] and record["event"]["data"] == {"k": "v"}


def test_a_client_error_is_not_retried(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(400)
    run_deliveries(broker_for(sub.url, tmp_path / "dead.jsonl"), event())
    assert len(sub.received) == 1
    (record,) = dead_letters(tmp_path / "dead.jsonl")
    assert record["attempts"] == 1 and record["reason"] == "HTTP 400"


@pytest.mark.parametrize("status", [404, 429])
def test_statuses_knative_retries_are_retried(scripted: Any, tmp_path: Path, status: int) -> None:
    sub = scripted(status, 202)
    run_deliveries(broker_for(sub.url, tmp_path / "dead.jsonl"), event())
    assert len(sub.received) == 2 and not dead_letters(tmp_path / "dead.jsonl")


def test_connection_failures_are_retried_then_dead_lettered(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/"
    run_deliveries(broker_for(nobody, tmp_path / "dead.jsonl", attempts=2), event())
    (record,) = dead_letters(tmp_path / "dead.jsonl")
    assert record["attempts"] == 2 and record["reason"].startswith("ConnectError")


def test_backoff_is_exponential_and_capped(tmp_path: Path) -> None:
    broker = Broker({}, tmp_path / "d", backoff=0.5, max_backoff=3.0)
    assert [broker.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_each_subscriber_of_a_type_gets_the_event(scripted: Any, tmp_path: Path) -> None:
    a, b, other = scripted(200), scripted(200), scripted(200)
    table = subscriptions_of([
        ((TYPE,), Subscriber("a", a.url)),
        ((TYPE, "x.other"), Subscriber("b", b.url)),
        (("x.other",), Subscriber("other", other.url)),
    ])  # fmt: skip
    run_deliveries(Broker(table, tmp_path / "dead.jsonl", backoff=0.01), event())
    assert (len(a.received), len(b.received), len(other.received)) == (1, 1, 0)


def test_an_event_without_subscribers_is_dropped_not_dead_lettered(tmp_path: Path) -> None:
    broker = Broker({}, tmp_path / "dead.jsonl")
    run_deliveries(broker, event())
    assert broker.dead == 0 and not (tmp_path / "dead.jsonl").exists()


def test_pingsource_events_route_by_their_coditecttype_extension() -> None:
    ping = CloudEvent(
        {"type": "dev.knative.sources.ping", "source": "/p", "coditecttype": "com.coditect.ops.cron"}, {}
    )
    assert logical_type(ping) == "com.coditect.ops.cron"
    assert logical_type(event()) == TYPE


def test_pending_deliveries_are_dead_lettered_at_shutdown(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(500)
    broker = Broker({TYPE: [Subscriber("sub", sub.url)]}, tmp_path / "dead.jsonl", attempts=5, backoff=30)

    async def go() -> None:
        broker.publish(event())
        while not sub.received:
            await asyncio.sleep(0.01)
        await broker.aclose()

    asyncio.run(go())
    (record,) = dead_letters(tmp_path / "dead.jsonl")
    assert record["reason"] == "broker stopped before delivery"


def test_ingress_accepts_binary_and_structured_and_refuses_garbage(scripted: Any, tmp_path: Path) -> None:
    sub = scripted(200)
    broker = broker_for(sub.url, tmp_path / "dead.jsonl")

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=broker)
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            binary = await client.post("/", content=b'{"a":1}', headers={
                "ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "/t", "ce-type": TYPE,
                "content-type": "application/json"})  # fmt: skip
            structured = await client.post("/", headers={"content-type": "application/cloudevents+json"},
                content=json.dumps({"specversion": "1.0", "id": "s-1", "source": "/t", "type": TYPE, "data": {"b": 2}}))  # fmt: skip
            garbage = await client.post("/", content=b"{}", headers={"content-type": "application/json"})
            wrong_method = await client.get("/")
        while broker.pending:
            await asyncio.gather(*broker.pending)
        await broker.aclose()
        assert binary.json() == {"id": "b-1", "subscribers": 1}
        return [binary.status_code, structured.status_code, garbage.status_code, wrong_method.status_code]

    assert asyncio.run(go()) == [202, 202, 400, 405]
    bodies = sorted((json.loads(r["body"]) for r in sub.received), key=json.dumps)
    assert bodies == [{"a": 1}, {"b": 2}]


def test_a_full_disk_loses_no_dead_letter(scripted: Any, small_disk: Any) -> None:
    """Issue 15 item 15: the dead-letter log on a full (real, tmpfs) disk: the delivery task does
    not fail, the lines wait in memory and are written once space is back."""
    from tests.plugins.small_disk import fill

    disk = small_disk("256k")
    fill(disk)
    sub = scripted(500)
    broker = Broker({TYPE: [Subscriber("sub", sub.url)]}, disk / "dead.jsonl", attempts=2, backoff=0.01,
                    retry_interval=0.05)  # fmt: skip
    events = [event({"n": i, "pad": "x" * 2000}) for i in range(20)]

    async def go() -> None:
        for e in events:
            broker.publish(e)
        while broker.pending:
            results = await asyncio.gather(*broker.pending, return_exceptions=True)
            assert not [r for r in results if isinstance(r, BaseException)]  # no task failed
        assert broker.dead == 20 and len(broker.unwritten) >= 1  # the disk is full: kept in memory
        (disk / "filler").unlink()  # space is back
        for _ in range(200):
            if not broker.unwritten:
                break
            await asyncio.sleep(0.05)
        await broker.aclose()

    asyncio.run(go())
    ids = [r["event"]["id"] for r in dead_letters_tolerant(disk / "dead.jsonl")]
    assert sorted(ids) == sorted(e["id"] for e in events) and broker.dropped == 0


def dead_letters_tolerant(path: Path) -> list[dict[str, Any]]:
    """Dead-letter lines, skipping a half line a failed write may have left."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
