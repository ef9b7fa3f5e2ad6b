"""Publishing binary-mode CloudEvents over HTTP to the sink Knative gives a function (`K_SINK`).

On Knative `K_SINK` is the Broker's ingress (set in the generated Service of every function whose
registry entry `publishes` something); in the local stack it is the dev broker. A publish is a
POST with a short timeout, retried with backoff on connection errors, timeouts and 5xx; a 4xx is
the event's fault and is not retried. Delivery to consumers is at-least-once end to end: a
publish that timed out may still have been accepted, so the same event (same `id`) can arrive
twice, and consumers deduplicate on `(source, id)` (see `coditect.events.handler`).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coditect.config import get_settings

if TYPE_CHECKING:  # imported when the first Publisher is made: a cold start that publishes
    import httpx  # nothing (most first requests) does not pay for httpx

log = logging.getLogger("coditect.events")


class SinkNotConfigured(RuntimeError):
    """`K_SINK` is unset: this process was not given anywhere to publish to."""


class PublishError(RuntimeError):
    """The sink refused the event (4xx) or stayed unreachable through every retry."""


def make_event(
    type: str, source: str, data: dict[str, Any], *, subject: str | None = None, event_id: str | None = None
) -> CloudEvent:
    attributes: dict[str, Any] = {
        "type": type,
        "source": source,
        "id": event_id or str(uuid.uuid4()),
        "datacontenttype": "application/json",
    }
    if subject is not None:
        attributes["subject"] = subject
    return CloudEvent(attributes, data)


class Publisher:
    """POSTs events to one sink URL. Tests point it at their own server or transport."""

    def __init__(
        self,
        sink: str,
        *,
        timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not sink:
            raise SinkNotConfigured("a Publisher needs a sink URL")
        self.sink = sink
        self.attempts = max(1, attempts)
        self.backoff = backoff
        import httpx

        self._client = httpx.Client(timeout=timeout, transport=transport)

    def publish(
        self,
        type: str,
        source: str,
        data: dict[str, Any],
        *,
        subject: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Send one event; return its id. Pass `event_id` to make a retried publish the same event."""
        event = make_event(type, source, data, subject=subject, event_id=event_id)
        self.send(event)
        return str(event["id"])

    def send(self, event: CloudEvent) -> None:
        import httpx

        headers, body = to_binary(event)
        fields = {"type": event["type"], "source": event["source"], "id": event["id"]}
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._client.post(self.sink, headers=headers, content=body)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    log.debug("event published", extra={"fields": fields})
                    return
                if response.status_code < 500:
                    raise PublishError(f"the sink refused event {event['id']}: HTTP {response.status_code}")
                failure = f"HTTP {response.status_code}"
            log.warning(
                "event publish failed", extra={"fields": {**fields, "attempt": attempt, "error": failure}}
            )
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise PublishError(f"event {event['id']} not delivered after {self.attempts} attempts: {failure}")

    def close(self) -> None:
        self._client.close()


@functools.lru_cache(maxsize=4)
def _publisher_for(sink: str) -> Publisher:
    return Publisher(sink)


def default_publisher() -> Publisher:
    """The process's publisher to its sink (the `sink` setting, `K_SINK`)."""
    sink = get_settings().sink
    if not sink:
        raise SinkNotConfigured(
            "K_SINK is not set: this function publishes CloudEvents but was given no sink "
            "(declare `publishes=` in its registry entry and re-render the manifests; locally the dev stack sets it)"
        )
    return _publisher_for(sink)


def publish(
    type: str, source: str, data: dict[str, Any], *, subject: str | None = None, event_id: str | None = None
) -> None:
    """Publish one event to `K_SINK` (raises SinkNotConfigured when unset, PublishError when undelivered)."""
    default_publisher().publish(type, source, data, subject=subject, event_id=event_id)
