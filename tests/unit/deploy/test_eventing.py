"""Triggers and PingSources are rendered from the registry and the ops job table (issue 16 item 2):
every (function, event type) of `FunctionSpec.events` gets exactly one Trigger to that function,
every cron job exactly one PingSource with its schedule, and the ping Trigger lets exactly those
pings through to the cron function."""

from __future__ import annotations

import json

import yaml

from coditect import registry
from coditect.deploy import eventing, files
from coditect.event_types import CRON as CRON_EVENT_TYPE
from coditect.event_types import PING as PING_EVENT_TYPE
from coditect.ops.jobs import JOBS
from coditect.registry.spec import FunctionSpec


def matches(trigger: dict[str, object], attributes: dict[str, str]) -> bool:
    wanted = trigger["spec"]["filter"]["attributes"]  # type: ignore[index]
    return all(attributes.get(k) == v for k, v in wanted.items())


def test_one_trigger_per_subscription_of_the_registry_and_of_any_new_function() -> None:
    extra = FunctionSpec("ex-audit", kind="cloudevent", events=("com.coditect.ex.happened",))
    specs = [*registry.FUNCTIONS, extra]
    triggers = eventing.triggers(specs)
    wanted = {(s.name, t) for s in specs for t in s.events}
    got = {
        (t["spec"]["subscriber"]["ref"]["name"], t["spec"]["filter"]["attributes"]["type"])
        for t in triggers
        if t["metadata"]["name"] != "ops-alerts"
    }
    assert got == wanted and ("ex-audit", "com.coditect.ex.happened") in got
    assert len({t["metadata"]["name"] for t in triggers}) == len(triggers)
    for t in triggers:
        assert t["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] == "coditect-dead-letter"
        ref = t["spec"]["subscriber"]["ref"]
        if ref["name"] != "coditect-dead-letter":
            assert ref["apiVersion"] == "serving.knative.dev/v1"


def test_each_job_has_its_ping_source_and_only_cron_pings_reach_the_cron_function() -> None:
    sources = eventing.ping_sources(list(registry.FUNCTIONS))
    assert {json.loads(s["spec"]["data"])["job"]: s["spec"]["schedule"] for s in sources} == {
        name: job.schedule for name, job in JOBS.items()
    }
    cron_triggers = [
        t
        for t in eventing.triggers(list(registry.FUNCTIONS))
        if t["spec"]["subscriber"]["ref"]["name"] == "cron"
    ]
    for s in sources:
        ping = {"type": PING_EVENT_TYPE, **s["spec"]["ceOverrides"]["extensions"]}
        assert [t["metadata"]["name"] for t in cron_triggers if matches(t, ping)] == [
            "cron-dev-knative-sources-ping"
        ]
    other_ping = {"type": PING_EVENT_TYPE}  # someone else's PingSource: not the cron function's
    assert not any(matches(t, other_ping) for t in cron_triggers)
    assert [t["metadata"]["name"] for t in cron_triggers if matches(t, {"type": CRON_EVENT_TYPE})] == [
        "cron-ops-cron"
    ]
    assert eventing.ping_sources([registry.function("health")]) == []


def test_the_committed_eventing_files_are_the_render() -> None:
    rendered = files()
    docs = [d for d in yaml.safe_load_all(rendered["infra/base/eventing/triggers.yaml"]) if d]
    assert docs == eventing.triggers(list(registry.FUNCTIONS))
