"""Prometheus metrics: one registry per process, served at `GET /metrics` by every FunctionApp.

The runtime records every request it answers (`observe_request`): a counter and a latency
histogram labelled by function, route *name* (never the raw path: ids would explode the label
cardinality; unmatched paths are "unmatched"), method and status. Areas add their own metrics
through the same conventions:

    from coditect.http import metrics

    START_SECONDS = metrics.histogram(
        "workspace_start_seconds", "Time from requested to ready.", ["backend"],
        buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
    )
    START_SECONDS.labels(backend="kubernetes").observe(elapsed)

Conventions: every name is prefixed `coditect_` (`NAMESPACE`), units are in the name and base
units (`_seconds`, `_bytes`), counters end in `_total` (prometheus-client adds it), labels are
bounded sets (route names, statuses, job names — never ids, paths or emails), and everything
lives in `REGISTRY` (not prometheus-client's global default, so tests and the process-level
collectors stay apart). The helpers are idempotent: declaring the same metric twice (a module
imported twice in tests) returns the first one.

One gunicorn worker per container (WORKERS=1, threads for concurrency) keeps a single in-process
registry correct; with several workers each would report its own share.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.metrics import MetricWrapperBase

NAMESPACE = "coditect"
REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

# Request latencies of an API: sub-millisecond health checks to long-polls of 30 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_lock = threading.Lock()
_declared: dict[str, MetricWrapperBase] = {}
M = TypeVar("M", bound=MetricWrapperBase)


def _declare(kind: type[M], name: str, documentation: str, labels: Sequence[str], **kwargs: Any) -> M:
    with _lock:
        existing = _declared.get(name)
        if existing is not None:
            if not isinstance(existing, kind):
                raise ValueError(f"metric {name!r} is already declared as {type(existing).__name__}")
            return existing
        metric = kind(name, documentation, list(labels), namespace=NAMESPACE, registry=REGISTRY, **kwargs)
        _declared[name] = metric
        return metric


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter `coditect_<name>_total` in the process registry."""
    return _declare(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge `coditect_<name>` in the process registry."""
    return _declare(Gauge, name, documentation, labels)


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), *, buckets: Sequence[float] = LATENCY_BUCKETS
) -> Histogram:
    """A histogram `coditect_<name>` in the process registry."""
    return _declare(Histogram, name, documentation, labels, buckets=tuple(buckets))


REQUESTS = counter(
    "http_requests",
    "HTTP requests answered, by function, route, method and status.",
    ["function", "route", "method", "status"],
)
LATENCY = histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by function, route and method.",
    ["function", "route", "method"],
)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# The labelled children per (function, route, method, status): `labels()` builds a key and takes
# a lock on every call; the set is bounded (route names x methods x statuses), so keep them.
_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}


def observe_request(function: str, route: str, method: str, status: int, seconds: float) -> None:
    """Record one answered request (called by FunctionApp.serve)."""
    method = method if method in _METHODS else "other"  # a client can send any token as a method
    key = (function, route, method, status)
    children = _children.get(key)
    if children is None:
        children = (
            REQUESTS.labels(function=function, route=route, method=method, status=str(status)),
            LATENCY.labels(function=function, route=route, method=method),
        )
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
