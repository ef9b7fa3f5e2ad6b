"""LocalProvisioner and the default workspace program, as real processes over real sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import Endpoint, ProvisionFailed, WorkspaceSpec
from tests.helpers import alive


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def host_pid(ns_pid: int, ancestor: int) -> int:
    """The host pid of the process the sandbox's pid namespace calls `ns_pid`, under `ancestor`
    (the workspace's ward): workspace programs run in their own pid namespace."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("NSpid", "").split()[-1:] != [str(ns_pid)] or len(fields["NSpid"].split()) < 2:
            continue
        pid = int(entry.name)
        while pid > 1:  # walk up to the ward
            if pid == ancestor:
                return int(entry.name)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                break
            pid = int(stat.rsplit(")", 1)[1].split()[1])
    raise AssertionError(f"no process {ns_pid} in the workspace's pid namespace")


def get(endpoint: Endpoint, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def state(prov: LocalProvisioner, spec: WorkspaceSpec) -> dict:
    return json.loads((prov.state_dir / f"{spec.workspace_id}.json").read_text())


@pytest.fixture
def prov(tmp_path: Path) -> Iterator[LocalProvisioner]:
    p = LocalProvisioner(tmp_path / "workspaces", start_timeout=30, stop_grace=5)
    yield p
    for workspace_id in p.list_workloads():  # no test leaves a process behind
        p.stop(workspace_id)


async def terminal_roundtrip(endpoint: Endpoint, ward: int) -> tuple[bytes, int]:
    """Run `echo hi` in the terminal; return the output and the shell's host pid (found under the
    workspace's `ward` while the socket is still open: closing it kills the shell)."""
    async with websockets.connect(f"ws://{endpoint.host}:{endpoint.port}/terminal") as ws:
        await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await ws.send(b"echo pid=$$; stty size; echo hi\n")
        output = b""
        while b"\r\nhi\r\n" not in output:
            output += await asyncio.wait_for(ws.recv(), 10)
        return output, host_pid(int(output.split(b"pid=")[-1].split(b"\r\n")[0]), ward)


def test_start_use_and_stop(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec()
    endpoint = prov.start(spec)
    assert endpoint.host == "127.0.0.1"
    assert get(endpoint, "/healthz") == (200, b'{"status":"ok"}')

    async def echo() -> list[str | bytes]:
        async with websockets.connect(f"ws://{endpoint.host}:{endpoint.port}/echo") as ws:
            await ws.send("hello")
            text = await ws.recv()
            await ws.send(b"\x00\xffbinary")
            return [text, await ws.recv()]

    assert asyncio.run(echo()) == ["hello", b"\x00\xffbinary"]
    output, shell = asyncio.run(terminal_roundtrip(endpoint, state(prov, spec)["pid"]))
    assert b"40 120\r\n" in output  # the resize message reached the PTY
    assert wait_gone(shell), "closing the socket must kill the shell"

    pid = state(prov, spec)["pid"]
    prov.stop(spec.workspace_id)
    assert not alive(pid)
    assert not (prov.state_dir / f"{spec.workspace_id}.json").exists()
    assert prov.status(spec.workspace_id).reason == "not_found"
    prov.stop(spec.workspace_id)  # idempotent


def test_program_http_echo_and_404(prov: LocalProvisioner, make_spec) -> None:
    endpoint = prov.start(make_spec())
    status, body = get(endpoint, "/echo-http/a/b?x=1", "POST", {"X-Test": "yes", "Authorization": "Bearer t"})
    echoed = json.loads(body)
    assert status == 200
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("POST", "/echo-http/a/b", "x=1")
    assert ["x-test", "yes"] in echoed["headers"] and ["authorization", "Bearer t"] in echoed["headers"]
    assert get(endpoint, "/nothing-here")[0] == 404


def test_start_twice_returns_the_same_endpoint(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec()
    first = prov.start(spec)
    pid = state(prov, spec)["pid"]
    assert prov.start(spec) == first
    assert state(prov, spec)["pid"] == pid
    assert list(prov.list_workloads()) == [spec.workspace_id]


def test_concurrent_starts_share_one_process(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec()
    other = LocalProvisioner(prov.state_dir)  # a duplicate CloudEvent delivered to another process
    results: list[Endpoint] = []
    threads = [threading.Thread(target=lambda p=p: results.append(p.start(spec))) for p in (prov, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results[0] == results[1]
    assert list(prov.list_workloads()) == [spec.workspace_id]


def test_another_instance_sees_and_stops_the_workload(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec()
    endpoint = prov.start(spec)
    other = LocalProvisioner(prov.state_dir)  # as the relay or cron process would
    seen = other.status(spec.workspace_id)
    assert (seen.running, seen.ready, seen.endpoint) == (True, True, endpoint)
    assert other.list_workloads() == {spec.workspace_id: seen}
    pid = state(prov, spec)["pid"]
    other.stop(spec.workspace_id)
    assert wait_gone(pid)
    assert prov.list_workloads() == {}


def test_command_that_exits_is_crashed(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec(command=(sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"))
    with pytest.raises(ProvisionFailed) as info:
        prov.start(spec)
    assert info.value.reason == "crashed"
    assert "code 3" in info.value.message and "boom" in info.value.message
    assert prov.list_workloads() == {}


def test_never_healthy_is_start_timeout_and_killed(tmp_path: Path, make_spec) -> None:
    # Unsandboxed: the pid file is outside any workspace tree (the sandbox has its own tests).
    prov = LocalProvisioner(tmp_path / "ws", start_timeout=3, stop_grace=1, sandboxed=False)
    pid_file = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec(command=(sys.executable, "-c", code, str(pid_file))))
    assert info.value.reason == "start_timeout"
    assert not alive(int(pid_file.read_text()))
    assert prov.list_workloads() == {}


def test_sigterm_is_ignored_then_killed(tmp_path: Path, make_spec) -> None:
    prov = LocalProvisioner(tmp_path / "ws", start_timeout=3, stop_grace=0.2, sandboxed=False)
    pid_file = tmp_path / "pid"
    code = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    )
    with pytest.raises(ProvisionFailed):
        prov.start(make_spec(command=(sys.executable, "-c", code, str(pid_file))))
    assert not alive(int(pid_file.read_text()))


def test_dead_process_with_state_file_is_not_running(prov: LocalProvisioner, make_spec) -> None:
    spec = make_spec()
    prov.start(spec)
    pid = state(prov, spec)["pid"]
    os.killpg(pid, signal.SIGKILL)  # a crash after start
    deadline = time.monotonic() + 5
    while prov.status(spec.workspace_id).running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert prov.status(spec.workspace_id).reason == "exited"
    assert prov.list_workloads()[spec.workspace_id].running is False
    prov.start(spec)  # the stale record does not block a fresh start
    assert state(prov, spec)["pid"] != pid


def proc_state(pid: int) -> str | None:
    """The state letter of `pid` in /proc ("Z": a zombie), or None once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("call", ["status", "list_workloads"])
def test_a_ward_killed_from_outside_is_reaped_by_the_next_call(
    prov: LocalProvisioner, make_spec, call: str
) -> None:
    spec = make_spec()
    prov.start(spec)
    pid = state(prov, spec)["pid"]  # a child of this (the test's) process
    os.kill(pid, signal.SIGKILL)  # the ward only: an OOM kill, say
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # until it has exited, without reaping it
    assert proc_state(pid) == "Z"
    if call == "status":
        assert prov.status(spec.workspace_id).reason == "exited"
    else:
        assert prov.list_workloads()[spec.workspace_id].running is False
    assert proc_state(pid) is None, "the provisioner's process must not keep a dead ward as a zombie"


def test_reused_pid_is_not_mistaken_for_the_workload(prov: LocalProvisioner, make_spec) -> None:
    """A state file whose pid now leads someone else's process group (the ward is long gone): not
    running, and stop signals nothing of that group, not even the SIGKILL for the ward's
    stragglers."""
    spec = make_spec()
    with subprocess.Popen(["sleep", "60"], start_new_session=True) as stranger:
        try:
            record = {"pid": stranger.pid, "proc_start": 1, "host": "127.0.0.1", "port": 9, "command": ["x"]}
            (prov.state_dir / f"{spec.workspace_id}.json").write_text(json.dumps(record))
            assert prov.status(spec.workspace_id).running is False
            prov.stop(spec.workspace_id)
            with pytest.raises(subprocess.TimeoutExpired):  # a kill would have ended it by then
                stranger.wait(timeout=1)
            assert not (prov.state_dir / f"{spec.workspace_id}.json").exists()
        finally:
            stranger.kill()


def test_program_exits_cleanly_on_sigterm() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "coditect.workspaces.program", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if get(Endpoint("127.0.0.1", port), "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
