"""The ward of a local workspace with a sync agent (the agent's TEST DOUBLE, offline): the start
order, where the credential goes, agent failures, restarts, and the stop outcome."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import ProvisionFailed, StopOutcome
from tests.helpers import alive

ROOT = Path(__file__).resolve().parents[3]
DOUBLE = (sys.executable, str(ROOT / "tests" / "fakes" / "sync_agent_double.py"), "--offline")
CREDENTIAL = "cwc_" + "c" * 43


def synced(make_spec):  # type: ignore[no-untyped-def]
    return make_spec(credential=CREDENTIAL, api_url="http://127.0.0.1:9")


@pytest.fixture
def prov(tmp_path: Path) -> Iterator[LocalProvisioner]:
    p = LocalProvisioner(
        tmp_path / "ws", agent_command=DOUBLE, start_timeout=30, stop_grace=2, flush_timeout=2
    )
    yield p
    for workspace_id in p.list_workloads():
        p.stop(workspace_id)


def ward_status(prov: LocalProvisioner, workspace_id: str) -> dict:
    return json.loads((prov.workspace_dir(workspace_id) / "status.json").read_text())


def test_agent_first_credential_in_a_file_only_then_a_clean_stop(prov: LocalProvisioner, make_spec) -> None:
    spec = synced(make_spec)
    prov.start(spec)
    wdir = prov.workspace_dir(spec.workspace_id)
    status = ward_status(prov, spec.workspace_id)
    assert status["phase"] == "running" and alive(status["agent"]) and alive(status["program"])
    credential = wdir / "credential"
    assert credential.read_text() == CREDENTIAL and credential.stat().st_mode & 0o777 == 0o600
    assert not credential.is_relative_to(prov.tree(spec.workspace_id))
    for pid in (status["agent"], status["program"]):  # never on a command line or in an environment
        assert CREDENTIAL.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert CREDENTIAL.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    argv = Path(f"/proc/{status['agent']}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--root") + 1] == str(prov.tree(spec.workspace_id)).encode()
    assert os.getpgid(status["agent"]) == status["agent"] != os.getpgid(status["program"])  # own groups
    outcome = prov.stop(spec.workspace_id)
    assert outcome == StopOutcome(flushed=True, detail="")
    assert not alive(status["agent"]) and not alive(status["program"])
    assert not wdir.exists()  # flushed: nothing kept


def test_an_agent_that_dies_while_hydrating_fails_the_start(tmp_path: Path, make_spec) -> None:
    crash = (sys.executable, "-c", "import sys; print('cannot reach the API'); sys.exit(4)")
    prov = LocalProvisioner(tmp_path / "ws", agent_command=crash, start_timeout=30)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(synced(make_spec))
    assert info.value.reason == "crashed"
    assert "sync agent exited with code 4 while hydrating" in info.value.message
    assert "cannot reach the API" in info.value.message
    assert prov.list_workloads() == {}


def test_a_killed_agent_is_restarted(prov: LocalProvisioner, make_spec) -> None:
    spec = synced(make_spec)
    prov.start(spec)
    first = ward_status(prov, spec.workspace_id)["agent"]
    os.killpg(first, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while ward_status(prov, spec.workspace_id)["agent"] == first and time.monotonic() < deadline:
        time.sleep(0.1)
    again = ward_status(prov, spec.workspace_id)["agent"]
    assert again != first and alive(again)
    assert prov.status(spec.workspace_id).ready


def test_a_flush_that_does_not_finish_is_reported_and_the_tree_kept(
    prov: LocalProvisioner, make_spec
) -> None:
    spec = synced(make_spec)
    prov.start(spec)
    tree = prov.tree(spec.workspace_id)
    (tree / "unsent.txt").write_text("unsent\n")
    (tree / ".double-hang-flush").write_text("")  # the double's flush then outlasts --flush-timeout
    outcome = prov.stop(spec.workspace_id)
    assert outcome is not None and not outcome.flushed and "unsent.txt" in outcome.detail
    assert (tree / "unsent.txt").read_text() == "unsent\n"
    assert not (prov.workspace_dir(spec.workspace_id) / "credential").exists()
    assert prov.list_workloads() == {}
