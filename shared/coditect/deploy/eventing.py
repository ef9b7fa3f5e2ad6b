"""Knative Eventing from the registry: the Broker, one Trigger per (function, event type) of
`FunctionSpec.events`, the alerts Trigger, and one PingSource per cron job of `coditect.ops.jobs`.

Every hop retries `RETRIES` times with exponential backoff (0.5 s, 1 s, 2 s, 4 s, 8 s) and then
hands the event to the dead-letter sink (infra/base/dead-letter.yaml), so a failing consumer never
loses an event silently. Consumers deduplicate on the event's (source, id): a retry after a
timed-out success is a no-op.

Cron events: a PingSource cannot choose its CloudEvent type (always `dev.knative.sources.ping`;
the CloudEvents SDK refuses to override a spec attribute through `ceOverrides`). So the
PingSources send data `{"job": "<name>"}` with the extension `coditecttype:
com.coditect.ops.cron`, and the Trigger of a function subscribing to the ping type also filters on
that extension (`EXTENSION_FILTERS`): the cron function gets exactly its own pings. Events that
do carry type `com.coditect.ops.cron` (the local scheduler, manual runs) match the other Trigger.
"""

from __future__ import annotations

import json
from typing import Any

from coditect import event_types
from coditect.deploy.knative import NAMESPACE
from coditect.ops.jobs import JOBS
from coditect.registry.spec import FunctionSpec

BROKER = "default"
DEAD_LETTER = "coditect-dead-letter"
RETRIES = 5
CRON_FUNCTION = "cron"
PING_EXTENSION = "coditecttype"
EXTENSION_FILTERS = {event_types.PING: {PING_EXTENSION: event_types.CRON}}
LABELS = {"app.kubernetes.io/part-of": "coditect"}


def _ref(api: str, kind: str, name: str) -> dict[str, Any]:
    return {"ref": {"apiVersion": api, "kind": kind, "name": name, "namespace": NAMESPACE}}


def delivery() -> dict[str, Any]:
    return {
        "deadLetterSink": _ref("v1", "Service", DEAD_LETTER),
        "retry": RETRIES,
        "backoffPolicy": "exponential",
        "backoffDelay": "PT0.5S",
    }


def broker() -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {
            "name": BROKER,
            "namespace": NAMESPACE,
            "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"},
            "labels": LABELS,
        },
        "spec": {"delivery": delivery()},
    }


def trigger_name(function: str, event_type: str) -> str:
    short = event_type.removeprefix("com.coditect.")
    return f"{function}-{short}".replace(".", "-").replace("_", "-")


def subscriber(spec: FunctionSpec) -> dict[str, Any]:
    # ASGI functions run as a Deployment behind a plain Service (coditect.deploy.relay).
    if spec.kind == "asgi":
        return _ref("v1", "Service", spec.name)
    return _ref("serving.knative.dev/v1", "Service", spec.name)


def trigger(name: str, event_type: str, sink: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "broker": BROKER,
            "filter": {"attributes": {"type": event_type, **EXTENSION_FILTERS.get(event_type, {})}},
            "subscriber": sink,
            "delivery": delivery(),
        },
    }


def triggers(functions: list[FunctionSpec]) -> list[dict[str, Any]]:
    out = [
        trigger(trigger_name(spec.name, event_type), event_type, subscriber(spec))
        for spec in functions
        for event_type in spec.events
    ]
    # Operational alerts go to the logging sink so every alert is kept and visible (`kubectl logs
    # deploy/coditect-dead-letter`); an overlay points this Trigger at the on-call integration.
    out.append(trigger("ops-alerts", event_types.ALERT, _ref("v1", "Service", DEAD_LETTER)))
    return out


def ping_source(job: str, schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": f"cron-{job}", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "schedule": schedule,
            "timezone": "UTC",
            "contentType": "application/json",
            "data": json.dumps({"job": job}),
            "ceOverrides": {"extensions": {PING_EXTENSION: event_types.CRON}},
            "sink": {
                "ref": {
                    "apiVersion": "eventing.knative.dev/v1",
                    "kind": "Broker",
                    "name": BROKER,
                    "namespace": NAMESPACE,
                }
            },
        },
    }


def ping_sources(functions: list[FunctionSpec]) -> list[dict[str, Any]]:
    """One PingSource per job of coditect.ops.jobs, when the registry has the cron function."""
    if not any(spec.name == CRON_FUNCTION for spec in functions):
        return []
    return [ping_source(job.name, job.schedule) for job in JOBS.values()]


def kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["broker.yaml", "triggers.yaml", "ping-sources.yaml"],
    }
