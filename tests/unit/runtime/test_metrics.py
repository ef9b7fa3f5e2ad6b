"""The metrics helpers other areas use: namespaced, idempotent, one registry."""

from __future__ import annotations

import pytest

from coditect.http import metrics


def test_helpers_are_namespaced_idempotent_and_exposed() -> None:
    first = metrics.gauge("test_backup_age_seconds", "Age of the last verified backup.")
    assert metrics.gauge("test_backup_age_seconds", "again") is first
    first.set(42)
    hist = metrics.histogram("test_start_seconds", "Start time.", ["backend"], buckets=(1, 5))
    hist.labels(backend="local").observe(2)
    metrics.counter("test_relay_bytes", "Bytes relayed.", ["direction"]).labels(direction="up").inc(10)
    text, ctype = metrics.exposition()
    body = text.decode()
    assert ctype.startswith("text/plain")
    assert "coditect_test_backup_age_seconds 42.0" in body
    assert 'coditect_test_start_seconds_bucket{backend="local",le="5.0"} 1.0' in body
    assert 'coditect_test_relay_bytes_total{direction="up"} 10.0' in body
    with pytest.raises(ValueError, match="already declared as Gauge"):
        metrics.counter("test_backup_age_seconds", "clash")


def test_unknown_methods_do_not_become_labels() -> None:
    metrics.observe_request("fn-test", "unmatched", "BREW", 405, 0.001)
    body = metrics.exposition()[0].decode()
    assert 'function="fn-test",method="other"' in body and "BREW" not in body
