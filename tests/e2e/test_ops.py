"""Ops on the local stack: every cron job through the broker → cron function → store records;
reconcile stops an orphan workspace process; and the runbook's restore procedure (CLI backup of
the running stack, restore into a fresh directory, start a stack on it) serves the same answers."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coditect.ops import records
from coditect.store import open_store
from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import WorkspaceSpec
from tests.e2e.stack import RunningStack, start_stack, wait_for
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e


def fire(stack: RunningStack, job: str, *, ping: bool = False) -> str:
    """Post one cron event to the stack's broker, as the scheduler or a PingSource would."""
    event_id = str(uuid.uuid4())
    attributes = {"source": f"/e2e/{job}", "id": event_id, "type": "com.coditect.ops.cron"}
    if ping:
        attributes.update(type="dev.knative.sources.ping", coditecttype="com.coditect.ops.cron")
    headers, body = to_binary(CloudEvent(attributes, {"job": job}))
    assert httpx.post(stack.broker_url, headers=headers, content=body, timeout=10).status_code < 300
    return event_id


def run_of(stack: RunningStack, job: str, event_id: str, timeout: float = 90) -> dict[str, Any]:
    """The run of `job` that event `event_id` triggered: its store record, or the cron log's line
    when it was skipped (another run held the job's lease; a skipped run writes no record)."""
    db = open_store(f"sqlite://{stack.data_dir / 'store.db'}")

    def done() -> dict[str, Any] | None:
        record = records.read(db, records.job_key(job))
        if record and record.get("trigger", {}).get("id") == event_id:
            return record
        for line in stack.log("cron").splitlines():
            if event_id in line and '"msg": "cron job"' in line:
                return dict(json.loads(line))
        return None

    try:
        return dict(wait_for(done, timeout, f"the {job} job triggered by {event_id}", interval=0.25))
    except TimeoutError:
        print(stack.log("cron"), file=sys.stderr)
        raise
    finally:
        db.close()


def run_job(stack: RunningStack, job: str, *, ping: bool = False) -> dict[str, Any]:
    """Fire `job` and return its run's record; fired again while the scheduler's own run of the
    job (at the top of a minute) holds its lease and ours is skipped."""
    for _ in range(3):
        record = run_of(stack, job, fire(stack, job, ping=ping))
        if record["outcome"] != "skipped":
            return record
    raise AssertionError(f"{job} was skipped three times: {record}")


def test_every_job_runs_through_the_broker_and_records_its_outcome(stack: RunningStack) -> None:
    for job in ("gc", "reconcile"):
        record = run_job(stack, job)
        assert record["outcome"] in ("ok", "incomplete"), record
    backup = run_job(stack, "backup", ping=True)
    assert backup["outcome"] == "ok", backup
    verify = run_job(stack, "verify")
    assert verify["outcome"] == "ok" and backup["backup_id"] in verify["detail"], verify
    health = run_job(stack, "health", ping=True)
    checks = {c["name"]: c for c in health["checks"]}
    assert checks["store_probe"]["outcome"] == "pass"
    assert checks["backup_freshness"]["outcome"] == "pass"
    readiness = {n: c for n, c in checks.items() if n.startswith("function.")}
    assert {"function.health", "function.sessions", "function.cron", "function.relay"} <= set(readiness)
    assert all(c["outcome"] == "pass" for c in readiness.values()), readiness
    # Every process of a replicated function is probed, not only the first.
    replicas = len(stack.state()["functions"]["health"]["replicas"])
    assert readiness["function.health"]["processes"] == replicas >= 2, readiness["function.health"]
    assert health["outcome"] == "ok", health


def test_reconcile_removes_an_orphan_local_workspace_process(stack: RunningStack) -> None:
    provisioner = LocalProvisioner(stack.data_dir / "workspaces")
    orphan = str(uuid.uuid4())
    ids = {k: str(uuid.uuid4()) for k in ("tenant_id", "user_id", "session_id")}
    provisioner.start(WorkspaceSpec(workspace_id=orphan, **ids))
    state = stack.data_dir / "workspaces" / f"{orphan}.json"
    pid = json.loads(state.read_text())["pid"]
    record = run_job(stack, "reconcile")
    assert record["outcome"] in ("ok", "incomplete"), record

    def gone() -> bool:
        try:
            status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return status in ("Z", "X")

    wait_for(gone, 60, "the orphan workspace process to be stopped")
    assert not state.exists()
    # The ward is this process's child: the provisioner's next call collects its exit status.
    assert provisioner.status(orphan).reason == "not_found"
    assert not Path(f"/proc/{pid}").exists()


def test_runbook_restore_brings_back_identical_api_answers(stack: RunningStack, tmp_path: Path) -> None:
    with stack.client() as http:
        password = f"e2e-{secrets.token_hex(8)}-quartz"
        body = {"email": f"ops-{secrets.token_hex(4)}@example.test", "password": password, "name": "Ops"}
        auth = check_envelope(http.post("/api/v5/auth/register", json=body), 201)
        headers = {"Authorization": f"Bearer {auth['tokens']['access_token']}"}
        sid = check_envelope(
            http.post("/api/v5/sessions", json={"name": "restore me"}, headers=headers), 201
        )["id"]
        cid = check_envelope(
            http.post(f"/api/v5/sessions/{sid}/conversations", json={"title": "c"}, headers=headers), 201
        )["id"]
        for i in range(3):
            message = {"role": "user", "content": f"hello {i}"}
            check_envelope(
                http.post(f"/api/v5/conversations/{cid}/messages", json=message, headers=headers), 201
            )
        files = {"src/main.py": b"print('restored')\n", "blob.bin": os.urandom(200_000)}
        for path, data in files.items():
            check_envelope(
                http.put(f"/api/v5/sessions/{sid}/files/{path}", content=data, headers=headers), 201
            )
        before = answers(http, headers, sid, cid, files)

    # The runbook, "Restore from backup" (local stack): back up, restore into a fresh directory,
    # bring the keys, start functions on it.
    env = {**os.environ, "CODITECT_DATA_DIR": str(stack.data_dir)}
    env.pop("CODITECT_STORE", None)
    taken = ops(["backup"], env)
    backup_id = taken["backup"]["id"]
    assert ops(["verify", "--backup", backup_id], env)["ok"]
    restored_dir = tmp_path / "restored" / "data"
    ops(["restore", "--backup", backup_id, "--to", str(restored_dir)], env)
    shutil.copytree(stack.data_dir / "keys", restored_dir / "keys")
    restored = start_stack(tmp_path / "restored")
    try:
        with restored.client() as http:
            after = answers(http, headers, sid, cid, files)
            login = {"email": body["email"], "password": password}
            check_envelope(http.post("/api/v5/auth/login", json=login), 200)
    finally:
        restored.stop()
    assert after == before


def ops(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "coditect.ops", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def answers(
    http: httpx.Client, headers: dict[str, str], sid: str, cid: str, files: dict[str, bytes]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessions": check_envelope(http.get("/api/v5/sessions", headers=headers), 200),
        "session": check_envelope(http.get(f"/api/v5/sessions/{sid}", headers=headers), 200),
        "conversations": check_envelope(
            http.get(f"/api/v5/sessions/{sid}/conversations", headers=headers), 200
        ),
        "messages": check_envelope(http.get(f"/api/v5/conversations/{cid}/messages", headers=headers), 200),
        "files": check_envelope(
            http.get(f"/api/v5/sessions/{sid}/files?recursive=true", headers=headers), 200
        ),
        "me": check_envelope(http.get("/api/v5/users/me", headers=headers), 200),
    }
    for path, data in files.items():
        r = http.get(f"/api/v5/sessions/{sid}/files/{path}", headers=headers)
        assert r.status_code == 200 and r.content == data
        out[f"file:{path}"] = (r.content, r.headers["ETag"], r.headers["X-File-Version"])
    return out
