"""The provisioner function in-process (functions-framework, signature type "cloudevent") fed the
CloudEvents the allocate/stop routes published, starting REAL local workspace processes; the
Kubernetes path runs KubernetesProvisioner against the in-process FAKE API (tests/fakes)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent

from coditect.config import get_settings
from coditect.http import metrics
from coditect.workspaces import backends, tickets
from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import NOT_FOUND, TransientProvisionError, WorkspaceSpec
from tests.helpers import check_envelope


def healthz(host: str, port: int) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def local(data_dir: Path) -> LocalProvisioner:
    return LocalProvisioner(data_dir / "workspaces")


def allocate_and_start(ws, account=None):  # type: ignore[no-untyped-def]
    account = account or ws.accounts.register()
    wid = check_envelope(ws.allocate(account, ws.session_for(account)), 202)["id"]
    [answer] = ws.deliver_pending("requested")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return account, wid


def start_samples(outcome: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "coditect_workspace_start_seconds_count", {"backend": "LocalProvisioner", "outcome": outcome}
        )
        or 0.0
    )


def test_requested_to_ready_runs_a_real_workspace(ws, data_dir) -> None:
    before = start_samples("ready")
    alice, wid = allocate_and_start(ws)
    assert start_samples("ready") == before + 1
    record = ws.record(alice, wid)
    assert record.status == "ready" and record.status_reason is None
    assert [t.status for t in record.history] == ["requested", "provisioning", "ready"]
    assert healthz(record.endpoint_host, record.endpoint_port) == 200
    shown = check_envelope(ws.client.get(f"/api/v5/workspaces/{wid}", headers=alice.headers), 200)
    assert shown["status"] == "ready" and "endpoint" not in json.dumps(shown) and "port" not in shown
    [ready] = ws.sink.of_type("ready")
    assert ready.get_data()["workspace_id"] == wid
    assert list(local(data_dir).list_workloads()) == [wid]
    out = check_envelope(ws.client.post(f"/api/v5/workspaces/{wid}/tickets", headers=alice.headers), 201)
    assert set(out) == {"ticket", "expires_in", "websocket_url", "http_url"} and out["expires_in"] <= 60
    assert out["websocket_url"].endswith(f"/workspaces/{wid}/") and out["websocket_url"].startswith("ws")
    grant = tickets.consume_ticket(ws.db, out["ticket"], wid)
    assert (grant.endpoint.host, grant.endpoint.port) == (record.endpoint_host, record.endpoint_port)


def test_duplicate_delivery_starts_one_workspace(ws, data_dir) -> None:
    alice, wid = allocate_and_start(ws)
    [event] = ws.sink.of_type("requested")
    pid = json.loads((data_dir / "workspaces" / f"{wid}.json").read_text())["pid"]
    assert ws.deliver(event).status_code == 200  # the same id again: deduplicated
    # The same request under another event id (a re-published outbox entry) adopts, never forks.
    again = CloudEvent({**event.get_attributes(), "id": "another-id"}, event.get_data())
    assert ws.deliver(again).status_code == 200
    assert list(local(data_dir).list_workloads()) == [wid]
    assert json.loads((data_dir / "workspaces" / f"{wid}.json").read_text())["pid"] == pid
    assert ws.record(alice, wid).status == "ready"
    assert len(ws.sink.of_type("ready")) == 1


class CrashAfterStart(LocalProvisioner):
    """A real LocalProvisioner whose first start dies after the workload was created, as a
    provisioner process killed mid-provisioning would (the record stays `provisioning`)."""

    crashes = 1

    def start(self, spec: WorkspaceSpec):  # type: ignore[no-untyped-def]
        endpoint = super().start(spec)
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("simulated crash mid-provisioning")
        return endpoint


def test_crash_mid_provisioning_converges_on_redelivery(ws, data_dir) -> None:
    backends.override(CrashAfterStart(data_dir / "workspaces"))
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    [event] = ws.sink.of_type("requested")
    assert ws.deliver(event).status_code == 500  # the broker will redeliver
    assert ws.record(alice, wid).status == "provisioning"
    assert list(local(data_dir).list_workloads()) == [wid]  # the half-done start left a workload
    assert ws.deliver(event).status_code == 200  # same event id: not marked handled, so it runs
    record = ws.record(alice, wid)
    assert record.status == "ready" and healthz(record.endpoint_host, record.endpoint_port) == 200
    assert list(local(data_dir).list_workloads()) == [wid]  # adopted, not a second process
    assert [t.status for t in record.history] == ["requested", "provisioning", "ready"]


class TransientOnce(LocalProvisioner):
    failures = 1

    def start(self, spec: WorkspaceSpec):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise TransientProvisionError("backend unavailable")
        return super().start(spec)


def test_transient_errors_are_retried_not_recorded(ws, data_dir) -> None:
    backends.override(TransientOnce(data_dir / "workspaces"))
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    [event] = ws.sink.of_type("requested")
    assert ws.deliver(event).status_code == 500
    assert ws.record(alice, wid).status == "provisioning"
    assert ws.deliver(event).status_code == 200
    assert ws.record(alice, wid).status == "ready"


def test_a_command_that_exits_fails_as_crashed(ws, data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_WORKSPACE_COMMAND", json.dumps(["/bin/sh", "-c", "echo boom; exit 3"]))
    get_settings.cache_clear()
    alice, wid = allocate_and_start(ws)
    record = ws.record(alice, wid)
    assert (record.status, record.status_reason) == ("failed", "crashed")
    assert record.endpoint_host is None
    [failed] = ws.sink.of_type("failed")
    assert failed.get_data()["reason"] == "crashed"
    shown = check_envelope(ws.client.get(f"/api/v5/workspaces/{wid}", headers=alice.headers), 200)
    assert (shown["status"], shown["status_reason"]) == ("failed", "crashed")
    assert local(data_dir).list_workloads() == {}  # a failed start leaves no process behind
    # Permanent: acked, and a redelivery does not try again.
    assert ws.deliver(ws.sink.of_type("requested")[0]).status_code == 200
    assert len(ws.sink.of_type("failed")) == 1


@pytest.mark.slow
def test_kubernetes_image_pull_failure_is_recorded(ws) -> None:
    from coditect.workspaces.k8s import objects
    from coditect.workspaces.k8s.backend import KubernetesProvisioner
    from coditect.workspaces.k8s.objects import WorkspaceTemplate
    from tests.fakes.k8s_api import FakeKubernetesAPI, waiting_status

    with FakeKubernetesAPI() as fake:
        prov = KubernetesProvisioner(
            "coditect-workspaces", WorkspaceTemplate(image="ghcr.io/coditect/theia:1.52.0"), fake.api_client(),
            start_timeout=60, poll_interval=0.02,
        )  # fmt: skip
        backends.override(prov)
        alice = ws.accounts.register()
        wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
        fake.script_pod(objects.workload_name(wid), (1, waiting_status("ErrImagePull", "manifest unknown")))
        [answer] = ws.deliver_pending("requested")
        assert answer.status_code == 200
        record = ws.record(alice, wid)
        assert (record.status, record.status_reason) == ("failed", "image_pull_failed")
        assert not [key for key in fake.objects if key[2].endswith(wid)]  # nothing left behind


def test_stop_removes_the_process_and_records_stopped(ws, data_dir) -> None:
    alice, wid = allocate_and_start(ws)
    pid = json.loads((data_dir / "workspaces" / f"{wid}.json").read_text())["pid"]
    check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=alice.headers), 202)
    [answer] = ws.deliver_pending("stop_requested")
    assert answer.status_code == 200
    record = ws.record(alice, wid)
    assert (record.status, record.status_reason) == ("stopped", "stopped_by_user")
    assert [t.status for t in record.history][-2:] == ["stopping", "stopped"]
    assert local(data_dir).status(wid) == NOT_FOUND
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X")
    [stopped] = ws.sink.of_type("stopped")
    assert stopped.get_data()["reason"] == "stopped_by_user"
    check_envelope(
        ws.client.post(f"/api/v5/workspaces/{wid}/tickets", headers=alice.headers), 409, "workspace_not_ready"
    )


def test_stop_before_the_start_event_starts_nothing(ws, data_dir) -> None:
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]
    check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=alice.headers), 202)
    for answer in ws.deliver_pending():
        assert answer.status_code == 200
    assert ws.record(alice, wid).status == "stopped"
    assert local(data_dir).list_workloads() == {}


def test_malformed_events_are_acked_without_effect(ws) -> None:
    event = CloudEvent(
        {"type": "com.coditect.workspace.requested", "source": "/elsewhere", "id": "x1"},
        {"workspace_id": "../../etc"},
    )
    assert ws.deliver(event).status_code == 200
    assert not list(backends.state_dir(get_settings()).glob("*.json"))
