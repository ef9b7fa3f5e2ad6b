"""The FoundationDB status parser on recorded documents and on cases derived from them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from coditect.ops.fdb_status import STORAGE_QUEUE_WARN_BYTES, HealthReport, assess, assess_backup

DATA = Path(__file__).resolve().parents[2] / "data" / "fdb-status"


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def healthy() -> dict[str, Any]:
    return load("healthy-7.1.json")


def derive(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Deep copy of `doc` with dotted paths (`cluster__data__state__name`) set or (None) removed."""
    out = copy.deepcopy(doc)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = out
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return out


def failing(report: HealthReport) -> list[str]:
    """Names of the checks with the report's (worst) outcome."""
    return [c.name for c in report.checks if c.outcome == report.outcome]


def test_healthy_document_passes_every_check(healthy: dict[str, Any]) -> None:
    report = assess(healthy)
    assert report.outcome == "pass", report.problems
    assert {c.name for c in report.checks} == {
        "document",
        "database_available",
        "client_available",
        "coordinators_quorum",
        "recovery_state",
        "data_state",
        "fault_tolerance",
        "qos_limiter",
        "qos_queues",
        "messages",
    }
    assert report.problems == ()


@pytest.mark.parametrize(
    ("changes", "outcome", "check"),
    [
        ({"cluster__database_available": False}, "fail", "database_available"),
        ({"client__database_status__available": False}, "fail", "client_available"),
        ({"client__coordinators__quorum_reachable": False}, "fail", "coordinators_quorum"),
        ({"cluster__data__state": {"name": "missing_data", "healthy": False}}, "fail", "data_state"),
        (
            {"cluster__data__state": {"name": "healing", "healthy": False, "min_replicas_remaining": 1}},
            "warn",
            "data_state",
        ),
        ({"cluster__data__state__name": "healthy_rebalancing"}, "warn", "data_state"),
        ({"cluster__recovery_state__name": "recruiting_transaction_servers"}, "fail", "recovery_state"),
        ({"cluster__recovery_state__name": "accepting_commits"}, "warn", "recovery_state"),
        ({"cluster__fault_tolerance__max_zone_failures_without_losing_data": 0}, "warn", "fault_tolerance"),
        (
            {"cluster__qos__performance_limited_by": {"name": "storage_server_write_queue_size"}},
            "warn",
            "qos_limiter",
        ),
        ({"cluster__qos__worst_queue_bytes_storage_server": STORAGE_QUEUE_WARN_BYTES}, "warn", "qos_queues"),
        ({"cluster__messages": [{"name": "unreachable_processes"}]}, "warn", "messages"),
        ({"cluster__messages": [{"name": "unreachable_master_worker"}]}, "fail", "messages"),
        ({"cluster__messages": [{"name": "storage_servers_error"}]}, "fail", "messages"),
        ({"client__messages": [{"name": "quorum_not_reachable"}]}, "fail", "messages"),
        ({"cluster__recovery_state": None}, "fail", "recovery_state"),
        ({"cluster__data": None}, "fail", "data_state"),
    ],
)
def test_derived_unhealthy_documents(
    healthy: dict[str, Any], changes: dict[str, Any], outcome: str, check: str
) -> None:
    report = assess(derive(healthy, **changes))
    assert report.outcome == outcome
    assert check in failing(report)
    assert report.check(check).detail


def test_unavailable_cluster_as_fdb_reports_it(healthy: dict[str, Any]) -> None:
    # An unavailable cluster omits most sections; every missing required one is a failure.
    doc = derive(healthy, cluster__database_available=False, cluster__data=None, cluster__qos=None)
    report = assess(doc)
    assert report.outcome == "fail"
    assert {"database_available", "data_state"} <= set(failing(report))
    assert report.check("qos_limiter").outcome == "warn"


@pytest.mark.parametrize("doc", [{}, {"cluster": {}}, {"client": None, "cluster": "x"}, []])
def test_empty_or_truncated_documents_fail_with_a_reason(doc: Any) -> None:
    report = assess(doc)
    assert report.outcome == "fail"
    assert "database_available" in failing(report)
    assert "missing" in report.check("database_available").detail
    assert report.check("document").outcome == "fail"


def test_wrong_types_do_not_crash(healthy: dict[str, Any]) -> None:
    doc = derive(healthy, cluster__database_available="yes", cluster__messages="oops")
    doc["cluster"]["fault_tolerance"] = []
    report = assess(doc)
    assert report.outcome == "fail"
    assert failing(report) == ["database_available"]


def test_report_is_json_serialisable(healthy: dict[str, Any]) -> None:
    report = assess(derive(healthy, cluster__messages=[{"name": "unreachable_processes"}]))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["outcome"] == "warn"
    assert {"name": "messages", "outcome": "warn", "detail": "messages: cluster:unreachable_processes"} in (
        data["checks"]
    )


def test_recorded_backup_status_is_running_but_not_yet_restorable() -> None:
    report = assess_backup(load("backup-status-6.2.json"))
    assert report.outcome == "warn"
    assert failing(report) == ["backup_restorable"]
    assert report.check("backup_state").outcome == "pass"
    json.dumps(report.to_dict())


@pytest.mark.parametrize(
    ("changes", "outcome", "check"),
    [
        ({"Restorable": True}, "pass", "backup_state"),
        ({"Status": {"Name": "Aborted", "Running": False, "Completed": False}}, "fail", "backup_state"),
        ({"Status": {"Name": "Completed", "Completed": True, "Running": False}}, "fail", "backup_restorable"),
        ({"Restorable": True, "Errors": ["blobstore 503"]}, "warn", "backup_errors"),
        ({"Restorable": True, "BackupAgentsPaused": True}, "warn", "backup_agents"),
        ({"Status": None}, "fail", "backup_state"),
    ],
)
def test_derived_backup_states(changes: dict[str, Any], outcome: str, check: str) -> None:
    report = assess_backup(derive(load("backup-status-6.2.json"), **changes))
    assert report.outcome == outcome
    assert check in failing(report)


def test_backup_lag_against_now() -> None:
    doc = derive(load("backup-status-6.2.json"), Restorable=True)
    log_end = doc["LatestLogEnd"]["EpochSeconds"]
    assert assess_backup(doc, now=log_end + 60).outcome == "pass"
    late = assess_backup(doc, now=log_end + 7200, max_lag_seconds=3600)
    assert (late.outcome, failing(late)) == ("warn", ["backup_lag"])


def test_empty_backup_document_fails() -> None:
    report = assess_backup({})
    assert (report.outcome, failing(report)) == ("fail", ["backup_state"])
