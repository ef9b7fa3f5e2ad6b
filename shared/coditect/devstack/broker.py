"""The local CloudEvents broker: the Knative Broker + Triggers of the local stack.

Functions publish to it at `K_SINK` in binary or structured mode (HTTP POST, any path); it
answers 202 at once and delivers the event, in binary mode, to every function whose
`FunctionSpec.events` lists the event's type (for PingSource events, type
`dev.knative.sources.ping`, the `coditecttype` extension names the logical type, as the
`cron-dev-knative-sources-ping` Trigger in infra/base/eventing/triggers.yaml matches it).

Delivery retries what Knative retries (connection failures, timeouts, 5xx, 404, 408, 409, 429)
with exponential backoff; what is still undelivered after the last attempt, or refused with
another 4xx, is appended to the dead-letter log (one JSON line: time, subscriber, attempts,
reason, the event in structured form). Deliveries still pending at shutdown are dead-lettered
too, so no event disappears silently.

A dead-letter log that cannot be written (a full disk: ENOSPC) loses nothing either: the lines
are kept in memory (at most `MAX_UNWRITTEN`, oldest dropped first, and counted) and written again
every `retry_interval` seconds and at shutdown; the delivery task never fails with the OSError.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cloudevents.conversion import to_binary, to_structured
from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http

from coditect import event_types

log = logging.getLogger("coditect.devstack.broker")
RETRYABLE_STATUS = frozenset({404, 408, 409, 429})
MAX_UNWRITTEN = 100_000  # dead-letter lines kept in memory while the log cannot be written


@dataclass(frozen=True)
class Subscriber:
    name: str
    url: str


def logical_type(event: CloudEvent) -> str:
    event_type = str(event["type"])
    if event_type == event_types.PING and event.get("coditecttype"):
        return str(event.get("coditecttype"))
    return event_type


class Broker:
    """ASGI app receiving events, plus the delivery loop. `subscriptions`: type → subscribers."""

    def __init__(
        self,
        subscriptions: Mapping[str, Sequence[Subscriber]],
        dead_letter: Path,
        *,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        retry_interval: float = 5.0,
    ) -> None:
        self.subscriptions = {k: list(v) for k, v in subscriptions.items()}
        self.dead_letter = dead_letter
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.pending: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.dead = 0
        self.retry_interval = retry_interval
        self.unwritten: deque[str] = deque()  # dead-letter lines not yet on disk
        self.dropped = 0  # lines lost because more than MAX_UNWRITTEN waited
        self._torn = False  # a failed write may have left half a line: end it first
        self._flusher: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- ingress -----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message["type"] == "http.request" and message.get("more_body", False)
        if scope["method"] != "POST":
            return await _answer(send, 405, {"error": "POST CloudEvents here"}, [(b"allow", b"POST")])
        headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in scope["headers"]}
        try:
            event = from_http(headers, body)
        except GenericException as exc:
            return await _answer(send, 400, {"error": f"not a CloudEvent: {exc}"})
        count = self.publish(event)
        await _answer(send, 202, {"id": event["id"], "subscribers": count})

    def publish(self, event: CloudEvent) -> int:
        """Schedule delivery of `event` to its subscribers; returns how many there are."""
        subscribers = self.subscriptions.get(logical_type(event), [])
        if not subscribers:
            log.info("broker: no subscriber for %s (id %s); dropped", event["type"], event["id"])
        for subscriber in subscribers:
            task = asyncio.ensure_future(self.deliver(event, subscriber))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        return len(subscribers)

    # -- delivery ----------------------------------------------------------------------------
    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    async def deliver(self, event: CloudEvent, subscriber: Subscriber) -> None:
        headers, body = to_binary(event)
        if isinstance(event.data, dict | list) and "content-type" not in headers:
            headers["content-type"] = "application/json"
        reason = "not attempted"
        attempt = 0
        try:
            for attempt in range(1, self.attempts + 1):
                retry, reason = await self._attempt(subscriber, headers, body)
                if reason == "":
                    self.delivered += 1
                    log.info(
                        "broker: %s %s → %s (attempt %d)",
                        event["type"],
                        event["id"],
                        subscriber.name,
                        attempt,
                    )
                    return
                if not retry:
                    break
                if attempt < self.attempts:
                    log.info("broker: %s → %s failed (%s); retry in %.1fs", event["id"], subscriber.name,
                             reason, self.delay(attempt))  # fmt: skip
                    await asyncio.sleep(self.delay(attempt))
        except asyncio.CancelledError:
            reason = "broker stopped before delivery"
            self.dead_letter_event(event, subscriber, attempt, reason)
            raise
        self.dead_letter_event(event, subscriber, attempt, reason)

    async def _attempt(
        self, subscriber: Subscriber, headers: dict[str, str], body: bytes | None
    ) -> tuple[bool, str]:
        """(retry?, reason); reason "" means delivered."""
        try:
            response = await self.client.post(subscriber.url, headers=headers, content=body or b"")
        except httpx.TransportError as exc:
            return True, f"{type(exc).__name__}: {exc}"
        if response.status_code < 300:
            return False, ""
        retry = response.status_code >= 500 or response.status_code in RETRYABLE_STATUS
        return retry, f"HTTP {response.status_code}"

    def dead_letter_event(
        self, event: CloudEvent, subscriber: Subscriber, attempts: int, reason: str
    ) -> None:
        self.dead += 1
        _, structured = to_structured(event)
        record = {
            "time": datetime.now(UTC).isoformat(),
            "subscriber": subscriber.name,
            "attempts": attempts,
            "reason": reason,
            "event": json.loads(structured),
        }
        if len(self.unwritten) >= MAX_UNWRITTEN:
            self.unwritten.popleft()
            self.dropped += 1
        self.unwritten.append(json.dumps(record, separators=(",", ":")) + "\n")
        self.flush_dead_letters()
        log.warning(
            "broker: dead-lettered %s %s for %s: %s", event["type"], event["id"], subscriber.name, reason
        )

    def flush_dead_letters(self) -> bool:
        """Append the waiting dead-letter lines; on an OSError keep them and retry later."""
        if not self.unwritten:
            return True
        try:
            self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with self.dead_letter.open("a", encoding="utf-8") as file:
                if self._torn:
                    file.write("\n")  # a reader skips the half line a failed write left
                    file.flush()
                    self._torn = False
                while self.unwritten:
                    file.write(self.unwritten[0])
                    file.flush()
                    self.unwritten.popleft()
        except OSError as exc:
            self._torn = True
            log.warning("broker: dead-letter log not writable (%s); %d line(s) kept in memory, retrying",
                        type(exc).__name__, len(self.unwritten))  # fmt: skip
            self._retry_later()
            return False
        return True

    def _retry_later(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            return
        with contextlib.suppress(RuntimeError):  # no running loop (a synchronous caller): next call
            self._flusher = asyncio.get_running_loop().create_task(self._flush_until_written())

    async def _flush_until_written(self) -> None:
        while self.unwritten:
            await asyncio.sleep(self.retry_interval)
            self.flush_dead_letters()

    async def aclose(self) -> None:
        """Stop: pending deliveries are cancelled (and dead-lettered), the client closed."""
        for task in list(self.pending):
            task.cancel()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
        if not self.flush_dead_letters():  # last resort: the terminal, rather than nowhere
            log.error("broker: %d dead-letter line(s) could not be written at shutdown", len(self.unwritten))
            sys.stderr.write("".join(self.unwritten))
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def subscriptions_of(subscribers: Sequence[tuple[Sequence[str], Subscriber]]) -> dict[str, list[Subscriber]]:
    """(event types, subscriber) pairs → type → subscribers."""
    table: dict[str, list[Subscriber]] = {}
    for types, subscriber in subscribers:
        for event_type in types:
            table.setdefault(event_type, []).append(subscriber)
    return table


async def _answer(
    send: Any, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})
