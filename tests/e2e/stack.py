"""Start and drive a real local stack from tests: `python -m coditect.devstack serve`, as the README says.

    running = start_stack(tmp_path)          # free ports, its own data directory
    running.url                              # the front door, e.g. http://127.0.0.1:41234
    running.pid("health"), running.log("health"), running.state()   # log: all its processes
    running.stop()                           # SIGTERM, returns the supervisor's exit status

Most tests use the session-scoped `stack` fixture (tests/e2e/conftest.py) instead of starting
their own; start one only to do something destructive (kill processes, stop the stack).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coditect.devstack.plan import free_port
from tests.helpers import check_envelope

ROOT = Path(__file__).resolve().parents[2]
# Test-only functions added to the registry's (CODITECT_DEVSTACK_EXTRA): a CloudEvent sink.
EXTRA = Path(__file__).resolve().parent / "stackfns" / "functions.py"
START_TIMEOUT = 120.0
# Until the real sync agent (`coditect.sync`) is on this branch, workspaces get its TEST DOUBLE,
# which honours the same command-line interface (tests/fakes/sync_agent_double.py).
SYNC_DOUBLE = ROOT / "tests" / "fakes" / "sync_agent_double.py"
REAL_SYNC_AGENT = importlib.util.find_spec("coditect.sync") is not None


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    data_dir: Path
    url: str
    output_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """<data dir>/devstack.json: urls, pids, restarts and logs of every function."""
        return dict(json.loads((self.data_dir / "devstack.json").read_text()))

    def pid(self, name: str) -> int:
        return int(self.state()["functions"][name]["pid"])

    def function_url(self, name: str) -> str:
        return str(self.state()["functions"][name]["url"])

    @property
    def broker_url(self) -> str:
        return str(self.state()["broker"])

    def log(self, name: str) -> str:
        """The log of a function (all its processes': `<name>.log`, `<name>.2.log`, ...), or of
        frontdoor, broker, scheduler, devstack."""
        logs = self.data_dir / "logs"
        paths = [logs / f"{name}.log", *sorted(logs.glob(f"{name}.[0-9].log"))]
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    def output(self) -> str:
        """What the supervisor printed on its terminal."""
        return self.output_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        return stop_process(self.process, sig, timeout)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
    """Send `sig` to `process` (a process group leader: started with start_new_session=True) and
    return its exit status; past `timeout`, kill its whole group and raise TimeoutExpired."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def wait_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float = 60.0, log: Path | None = None
) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`; raise when `process` exits
    first or nothing listens within `timeout` (with the tail of its `log`, when given)."""
    tail = lambda: log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""  # noqa: E731
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout:.0f} s:\n{tail()}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_stack(work_dir: Path, env: Mapping[str, str] | None = None) -> RunningStack:
    """Start a stack with its data in `work_dir`/data on free ports (the front door on
    `env["CODITECT_PORT"]` when given, e.g. to restart on the same port); return once health
    answers 200."""
    data_dir = work_dir / "data"
    port = int((env or {}).get("CODITECT_PORT") or free_port())
    full_env = dict(os.environ)
    full_env.update(
        CODITECT_DATA_DIR=str(data_dir),
        CODITECT_PORT=str(port),
        CODITECT_HOST="127.0.0.1",
        CODITECT_DEVSTACK_EXTRA=str(EXTRA),
        CODITECT_BROKER_ATTEMPTS="4",
        CODITECT_BROKER_BACKOFF="0.05",
        CODITECT_DEVSTACK_GRACE="3",
        CODITECT_FRONTDOOR_BODY_TIMEOUT="3",  # slow-body tests wait for the front door's 408
    )
    if not REAL_SYNC_AGENT:
        full_env["CODITECT_WORKSPACE_SYNC_COMMAND"] = json.dumps([sys.executable, str(SYNC_DOUBLE)])
    full_env.pop("CODITECT_STORE", None)
    full_env.pop("CODITECT_KEYS_DIR", None)
    full_env.update(env or {})
    output = work_dir / "supervisor.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coditect.devstack", "serve"],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = RunningStack(process, data_dir, f"http://127.0.0.1:{port}", output, full_env)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited with {process.returncode}:\n{running.output()}")
        try:
            return httpx.get(running.url + "/api/v5/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, START_TIMEOUT, "the local stack to answer /api/v5/health")
    except BaseException:
        running.stop(signal.SIGKILL)
        print(running.output(), file=sys.stderr)
        raise
    return running


# -- the API steps most end-to-end tests begin with ---------------------------------------------
def register(http: httpx.Client) -> dict[str, str]:
    """A new account; its Authorization header."""
    body = {"email": f"e2e-{secrets.token_hex(4)}@example.test", "password": f"e2e-{secrets.token_hex(8)}-quartz",
            "name": "E2E"}  # fmt: skip
    data = check_envelope(http.post("/api/v5/auth/register", json=body), 201)
    return {"Authorization": f"Bearer {data['tokens']['access_token']}"}


def new_session(http: httpx.Client, headers: dict[str, str], name: str = "e2e") -> str:
    return str(check_envelope(http.post("/api/v5/sessions", json={"name": name}, headers=headers), 201)["id"])


def ready_workspace(
    stack: RunningStack, http: httpx.Client, headers: dict[str, str], sid: str | None = None
) -> str:
    """Allocate a workspace for session `sid` (a new session when None); wait until it is ready."""
    sid = sid or new_session(http, headers)
    wid = str(
        check_envelope(http.post("/api/v5/workspaces", json={"session_id": sid}, headers=headers), 202)["id"]
    )

    def ready() -> bool:
        shown = check_envelope(http.get(f"/api/v5/workspaces/{wid}", headers=headers), 200)
        assert shown["status"] not in ("failed", "stopped"), (shown, stack.log("provisioner"))
        return bool(shown["status"] == "ready")

    wait_for(ready, 90, "the workspace to become ready")
    return wid


def user_with_workspace(stack: RunningStack, http: httpx.Client) -> tuple[dict[str, str], str, str]:
    """A new account, a new session of it and the session's ready workspace: (headers, sid, wid)."""
    headers = register(http)
    sid = new_session(http, headers)
    return headers, sid, ready_workspace(stack, http, headers, sid)


def ticket(http: httpx.Client, headers: dict[str, str], wid: str) -> str:
    """A one-time ticket for a WebSocket to workspace `wid`."""
    return str(check_envelope(http.post(f"/api/v5/workspaces/{wid}/tickets", headers=headers), 201)["ticket"])
