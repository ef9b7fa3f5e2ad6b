"""CloudEvents: the publisher against a real local HTTP sink, the handler decorator's dedupe,
ack/retry and log line on the real SQLite store, and the outbox."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent, from_http

from coditect.config import get_settings
from coditect.events import (
    OutboxEvent,
    Publisher,
    PublishError,
    SinkNotConfigured,
    drain_outbox,
    event_handler,
    flush_outbox,
    prune_dedupe,
    publish,
    record_outbox,
)
from coditect.http import logs
from coditect.keyspace import DEDUPE, OUTBOX, dedupe_key
from coditect.store import Database, Transaction, open_store

logs.configure("events-tests")


class Sink:
    """A real HTTP server on loopback that records CloudEvents and answers scripted statuses."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.events: list[CloudEvent] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                sink.raw.append((headers, body))
                status = sink.statuses.pop(0) if sink.statuses else 202
                if status < 300:
                    sink.events.append(from_http(headers, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.server.shutdown()
    s.server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_store(f"sqlite://{tmp_path / 'store.db'}")
    yield d
    d.close()


def event(id: str = "e-1", type: str = "com.coditect.test", source: str = "/tests") -> CloudEvent:
    return CloudEvent({"type": type, "source": source, "id": id}, {"n": 1})


# -- publisher -----------------------------------------------------------------------------------
def test_publish_posts_a_binary_mode_cloudevent(sink: Sink) -> None:
    pub = Publisher(sink.url, backoff=0)
    event_id = pub.publish(
        "com.coditect.workspace.requested", "/workspaces", {"id": "w1"}, subject="w1", event_id="ev-9"
    )
    assert event_id == "ev-9"
    [(headers, body)] = sink.raw
    assert headers["ce-type"] == "com.coditect.workspace.requested" and headers["ce-id"] == "ev-9"
    assert headers["ce-source"] == "/workspaces" and headers["ce-subject"] == "w1"
    assert headers["ce-specversion"] == "1.0" and headers["content-type"] == "application/json"
    assert json.loads(body) == {"id": "w1"}  # binary mode: the body is the data alone


def test_publish_retries_5xx_then_succeeds_and_gives_up_after_the_attempts(sink: Sink) -> None:
    sink.statuses = [503, 500]
    Publisher(sink.url, attempts=3, backoff=0).publish("t", "/s", {}, event_id="same")
    assert [h["ce-id"] for h, _ in sink.raw] == ["same"] * 3 and len(sink.events) == 1
    sink.statuses = [502, 502]
    with pytest.raises(PublishError, match="after 2 attempts"):
        Publisher(sink.url, attempts=2, backoff=0).publish("t", "/s", {})


def test_publish_does_not_retry_a_4xx(sink: Sink) -> None:
    sink.statuses = [400]
    with pytest.raises(PublishError, match="refused"):
        Publisher(sink.url, attempts=3, backoff=0).publish("t", "/s", {})
    assert len(sink.raw) == 1


def test_publish_retries_connection_errors() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    server.server_close()  # nothing listens there any more
    with pytest.raises(PublishError, match="ConnectError"):
        Publisher(url, attempts=2, backoff=0, timeout=0.5).publish("t", "/s", {})


def test_module_publish_needs_k_sink(monkeypatch: pytest.MonkeyPatch, sink: Sink) -> None:
    monkeypatch.delenv("K_SINK", raising=False)
    get_settings.cache_clear()
    with pytest.raises(SinkNotConfigured, match="K_SINK is not set"):
        publish("t", "/s", {})
    monkeypatch.setenv("K_SINK", sink.url)
    get_settings.cache_clear()  # settings are read once per process: this is a new "process"
    publish("t", "/s", {"a": 1}, event_id="via-env")
    assert sink.events[-1]["id"] == "via-env"


# -- handler ---------------------------------------------------------------------------------------
def test_handler_runs_once_per_source_and_id(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    calls: list[str] = []

    @event_handler(db, function="consumer")
    def on_event(ev: CloudEvent) -> None:
        calls.append(ev["id"])

    on_event(event("a"))
    on_event(event("a"))  # redelivery
    on_event(event("a", source="/other"))  # same id, another source: another event
    assert calls == ["a", "a"]
    assert db.transact(lambda tr: tr.get(dedupe_key("/tests", "a"))) is not None
    lines = [
        json.loads(logs.JsonFormatter("c").format(r)) for r in caplog.records if r.getMessage() == "event"
    ]
    assert [(x["id"], x["source"], x["outcome"]) for x in lines] == [
        ("a", "/tests", "handled"),
        ("a", "/tests", "duplicate"),
        ("a", "/other", "handled"),
    ]
    assert all(x["type"] == "com.coditect.test" for x in lines)


def test_a_failing_handler_raises_for_retry_and_leaves_no_mark(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    attempts: list[int] = []

    @event_handler(db)
    def flaky(ev: CloudEvent) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")

    with pytest.raises(RuntimeError):
        flaky(event("f"))
    assert db.transact(lambda tr: tr.get(dedupe_key("/tests", "f"))) is None
    flaky(event("f"))  # the redelivery is handled
    flaky(event("f"))
    assert len(attempts) == 2
    outcomes = [
        json.loads(logs.JsonFormatter("c").format(r))["outcome"]
        for r in caplog.records
        if r.getMessage() == "event"
    ]
    assert outcomes == ["failed", "handled", "duplicate"]


def test_handler_opens_the_store_lazily_from_a_getter(db: Database) -> None:
    opened: list[int] = []

    def get_db() -> Database:
        opened.append(1)
        return db

    @event_handler(get_db)
    def noop(ev: CloudEvent) -> None:
        pass

    assert opened == []
    noop(event("g"))
    assert opened


def test_functions_framework_acks_with_200_and_answers_500_for_retry(tmp_path: Path) -> None:
    from functions_framework import create_app

    source = tmp_path / "main.py"
    source.write_text(
        "import functions_framework\n"
        "from coditect.events import event_handler\n"
        "from coditect.store import open_store\n"
        f"db = open_store('sqlite://{tmp_path / 'fn.db'}')\n"
        "@functions_framework.cloud_event\n"
        "@event_handler(db, function='fn')\n"
        "def on_test_event(event):\n"
        "    if event.data.get('fail'):\n"
        "        raise RuntimeError('retry me')\n"
    )
    from functions_framework import _function_registry

    # functions-framework records @cloud_event targets by name, process-wide: use a name no other
    # test's target has ("handle" is every HTTP function's) and forget it afterwards.
    try:
        client = create_app("on_test_event", str(source), "cloudevent").test_client()
    finally:
        _function_registry.REGISTRY_MAP.pop("on_test_event", None)
    headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s", "content-type": "application/json"}
    assert client.post("/", headers={**headers, "ce-id": "1"}, data=b'{"fail": false}').status_code == 200
    assert client.post("/", headers={**headers, "ce-id": "2"}, data=b'{"fail": true}').status_code == 500
    assert (
        client.post("/", headers={**headers, "ce-id": "1"}, data=b'{"fail": true}').status_code == 200
    )  # duplicate


def test_prune_dedupe_drops_only_old_marks_in_bounded_batches(db: Database) -> None:
    def mark(tr: Transaction, i: int, at: float) -> None:
        tr.set(dedupe_key("/s", f"e{i:03d}"), json.dumps({"type": "t", "at": at}).encode())

    for i in range(25):
        db.transact(mark, i, 1000.0 if i % 2 else 5000.0)
    db.transact(lambda tr: tr.set(dedupe_key("/s", "junk"), b"not json"))
    assert prune_dedupe(db, older_than=100, now=5050.0, batch=4) == 12 + 1
    left = db.transact(lambda tr: tr.get_range(*DEDUPE.range()))
    assert len(left) == 13 and all(json.loads(value)["at"] == 5000.0 for _, value in left)


# -- outbox ----------------------------------------------------------------------------------------
def test_outbox_records_in_the_transaction_and_flushes_after(db: Database, sink: Sink) -> None:
    ev = OutboxEvent.new("com.coditect.workspace.requested", "/workspaces", {"id": "w"}, subject="w")

    def allocate(tr: Transaction, e: OutboxEvent) -> None:
        tr.set(b"workspace-w", b"requested")
        record_outbox(tr, e)

    db.faults.commit_unknown_after = 1  # the body runs twice: still one outbox entry
    db.transact(allocate, ev)
    assert len(db.transact(lambda tr: tr.get_range(*OUTBOX.range()))) == 1
    assert flush_outbox(db, Publisher(sink.url, backoff=0), ev)
    assert [e["id"] for e in sink.events] == [ev.id] and sink.events[0]["subject"] == "w"
    assert db.transact(lambda tr: tr.get_range(*OUTBOX.range())) == []


def test_an_aborted_transaction_leaves_nothing_to_publish(db: Database, sink: Sink) -> None:
    ev = OutboxEvent.new("t", "/s", {})

    def fails(tr: Transaction) -> None:
        record_outbox(tr, ev)
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        db.transact(fails)
    assert drain_outbox(db, Publisher(sink.url, backoff=0)) == 0 and sink.raw == []


def test_drain_publishes_oldest_first_and_stops_at_a_failure(db: Database, sink: Sink) -> None:
    events = [OutboxEvent("t", "/s", {"i": i}, id=f"o{i}", time_ns=1_000 + i) for i in range(5)]
    for e in reversed(events):
        db.transact(record_outbox, e)
    pub = Publisher(sink.url, attempts=2, backoff=0)
    sink.statuses = [202, 202, 503, 503]
    assert drain_outbox(db, pub) == 2
    assert [e["id"] for e in sink.events] == ["o0", "o1"]
    assert drain_outbox(db, pub, limit=2) == 2
    assert [e["id"] for e in sink.events] == ["o0", "o1", "o2", "o3"]
    young = OutboxEvent.new("t", "/s", {})
    db.transact(record_outbox, young)
    assert drain_outbox(db, pub, min_age=3600) == 1  # o4 is old; the young one waits
    assert [
        OutboxEvent.decode(value).id for _, value in db.transact(lambda tr: tr.get_range(*OUTBOX.range()))
    ] == [young.id]
