"""reconcile() and the session purge hook against real local workspace processes.

Time-based policies are driven by the injected `now`, never by sleeping."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

from coditect.config import get_settings
from coditect.workspaces import tickets
from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import NOT_FOUND, WorkspaceSpec
from coditect.workspaces.reconcile import reconcile
from tests.functional.workspaces.test_workspaces_provisioner import allocate_and_start
from tests.helpers import check_envelope


def local(data_dir: Path) -> LocalProvisioner:
    return LocalProvisioner(data_dir / "workspaces")


def test_orphan_workload_is_stopped_and_live_ones_are_kept(ws, data_dir) -> None:
    alice, wid = allocate_and_start(ws)
    prov = local(data_dir)
    orphan = str(uuid.uuid4())
    ids = {k: str(uuid.uuid4()) for k in ("tenant_id", "user_id", "session_id")}
    prov.start(WorkspaceSpec(workspace_id=orphan, **ids))
    counts = reconcile(ws.db, prov)
    assert counts["orphans_stopped"] == 1
    assert prov.status(orphan) == NOT_FOUND
    assert prov.status(wid).ready and ws.record(alice, wid).status == "ready"
    assert reconcile(ws.db, prov)["orphans_stopped"] == 0


def test_workload_of_a_stopped_record_is_stopped(ws, data_dir) -> None:
    alice, wid = allocate_and_start(ws)
    check_envelope(ws.client.delete(f"/api/v5/workspaces/{wid}", headers=alice.headers), 202)
    prov = local(data_dir)
    # The stop event is lost; after the grace period the reconciler finishes the stop itself.
    counts = reconcile(ws.db, prov, now=time.time() + 3600)
    assert counts["stops_finished"] == 1
    assert prov.status(wid) == NOT_FOUND
    assert ws.record(alice, wid).status == "stopped"


def test_record_whose_process_died_is_marked_crashed(ws, data_dir) -> None:
    alice, wid = allocate_and_start(ws)
    pid = json.loads((data_dir / "workspaces" / f"{wid}.json").read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    prov = local(data_dir)
    deadline = time.monotonic() + 10
    while prov.status(wid).running and time.monotonic() < deadline:
        time.sleep(0.05)  # the kill is asynchronous
    counts = reconcile(ws.db, prov)
    assert counts["crashed"] == 1
    record = ws.record(alice, wid)
    assert (record.status, record.status_reason) == ("failed", "crashed")
    assert prov.list_workloads() == {}
    assert [e.get_data()["reason"] for e in ws.sink.of_type("failed")] == ["crashed"]


def test_idle_workspace_is_stopped_and_active_one_kept(ws, data_dir) -> None:
    settings = get_settings()
    alice, idle = allocate_and_start(ws)
    carol, busy = allocate_and_start(ws)
    later = time.time() + settings.workspace_idle_timeout + 60
    tickets.record_activity(ws.db, carol.tenant_id, busy, now=later - 30)
    prov = local(data_dir)
    counts = reconcile(ws.db, prov, now=later)
    assert counts["idle_stopped"] == 1
    record = ws.record(alice, idle)
    assert (record.status, record.status_reason) == ("stopped", "idle_timeout")
    assert prov.status(idle) == NOT_FOUND
    assert ws.record(carol, busy).status == "ready" and prov.status(busy).ready
    assert [e.get_data()["reason"] for e in ws.sink.of_type("stopped")] == ["idle_timeout"]


def test_max_lifetime_stops_even_an_active_workspace(ws, data_dir) -> None:
    settings = get_settings()
    alice, wid = allocate_and_start(ws)
    later = time.time() + settings.workspace_max_lifetime + 60
    tickets.record_activity(ws.db, alice.tenant_id, wid, now=later - 1)
    counts = reconcile(ws.db, local(data_dir), now=later)
    assert counts["lifetime_stopped"] == 1
    record = ws.record(alice, wid)
    assert (record.status, record.status_reason) == ("stopped", "max_lifetime")


def test_stuck_start_fails_with_start_timeout(ws, data_dir) -> None:
    alice = ws.accounts.register()
    wid = check_envelope(ws.allocate(alice, ws.session_for(alice)), 202)["id"]  # never delivered
    prov = local(data_dir)
    assert reconcile(ws.db, prov)["start_timeouts"] == 0
    counts = reconcile(ws.db, prov, now=time.time() + get_settings().workspace_start_deadline + 1)
    assert counts["start_timeouts"] == 1
    record = ws.record(alice, wid)
    assert (record.status, record.status_reason) == ("failed", "start_timeout")
    # A late delivery of the original event must not start anything now.
    assert ws.deliver_pending("requested")[0].status_code == 200
    assert prov.list_workloads() == {}


def test_deleting_the_session_stops_its_workspace(ws, data_dir) -> None:
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    wid = check_envelope(ws.allocate(alice, sid), 202)["id"]
    assert ws.deliver_pending("requested")[0].status_code == 200
    sessions = ws.accounts.client("sessions")
    check_envelope(sessions.delete(f"/api/v5/sessions/{sid}", headers=alice.headers), 204)
    from coditect.workspaces import repository

    assert ws.record(alice, wid) is None
    assert ws.db.transact(repository.tenant_of, wid) is None
    check_envelope(ws.client.get(f"/api/v5/workspaces/{wid}", headers=alice.headers), 404, "not_found")
    # The stop event recorded by the purge hook goes out with the next drain (the cron reconcile).
    prov = local(data_dir)
    counts = reconcile(ws.db, prov, now=time.time() + 60, outbox_min_age=0)
    assert counts["outbox_published"] == 1 and counts["orphans_stopped"] == 1
    stop_events = [
        e for e in ws.sink.of_type("stop_requested") if e.get_data().get("reason") == "session_deleted"
    ]
    assert len(stop_events) == 1
    assert prov.status(wid) == NOT_FOUND  # the reconciler already removed the orphan
    assert ws.deliver(stop_events[0]).status_code == 200  # and the provisioner's stop is a no-op
