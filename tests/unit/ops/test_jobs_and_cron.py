"""The job registry is the one schedule table; cron events of both shapes name their job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cloudevents.http import CloudEvent

from coditect.event_types import CRON as CRON_EVENT_TYPE
from coditect.event_types import PING as PING_EVENT_TYPE
from coditect.ops.cron import NotACronEvent, job_of
from coditect.ops.jobs import JOBS, SCHEDULES, job
from coditect.registry.spec import resolve

ROOT = Path(__file__).resolve().parents[3]


def test_every_job_resolves_and_runs_in_production_on_its_schedule() -> None:
    assert set(JOBS) == {"health", "backup", "verify", "reconcile", "gc"}
    for spec in JOBS.values():
        assert callable(resolve(spec.runner))
    documents = yaml.safe_load_all((ROOT / "infra/base/eventing/ping-sources.yaml").read_text())
    production = {
        json.loads(d["spec"]["data"])["job"]: d["spec"]["schedule"]
        for d in documents
        if d and d["kind"] == "PingSource"
    }
    assert production == SCHEDULES
    with pytest.raises(KeyError, match="known: health"):
        job("backpu")


def event(type: str, data: object, **ext: str) -> CloudEvent:
    return CloudEvent({"type": type, "source": "/test", "id": "1", **ext}, data)


@pytest.mark.parametrize("name", sorted(JOBS))
def test_both_event_shapes_name_the_job(name: str) -> None:
    assert job_of(event(CRON_EVENT_TYPE, {"job": name})) == name
    assert job_of(event(PING_EVENT_TYPE, {"job": name}, coditecttype=CRON_EVENT_TYPE)) == name
    assert job_of(event(PING_EVENT_TYPE, json.dumps({"job": name}), coditecttype=CRON_EVENT_TYPE)) == name


@pytest.mark.parametrize(
    ("ev", "why"),
    [
        (event(PING_EVENT_TYPE, {"job": "gc"}), "coditecttype"),
        (event(PING_EVENT_TYPE, {"job": "gc"}, coditecttype="com.other"), "coditecttype"),
        (event("com.coditect.workspace.requested", {"job": "gc"}), "unexpected event type"),
        (event(CRON_EVENT_TYPE, {"job": "nope"}), "no known job"),
        (event(CRON_EVENT_TYPE, {}), "no known job"),
        (event(CRON_EVENT_TYPE, "not json"), "not JSON"),
    ],
)
def test_other_events_are_refused_with_a_reason(ev: CloudEvent, why: str) -> None:
    with pytest.raises(NotACronEvent, match=why):
        job_of(ev)
