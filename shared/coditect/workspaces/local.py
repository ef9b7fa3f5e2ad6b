"""LocalProvisioner: the embedded default. Each workspace is real processes on loopback.

A workspace is a ward (`coditect.workspaces.ward`) owning two process groups: the sync agent
(outside the sandbox; it alone reads the credential file) and the workspace program (inside the
bubblewrap sandbox, `coditect.workspaces.sandbox`, cwd = the tree). The ward is detached (its own
session) so it outlives the short-lived function process that started it; the relay, the cron
reconcile and the next CloudEvent delivery are other processes, so all state lives in files
under `state_dir`:

    <state_dir>/<workspace_id>.json        ward pid, ports, started_at, proc start time (atomic)
    <state_dir>/<workspace_id>.log         the ward's and the program's output (kept after a failed start)
    <state_dir>/locks/<workspace_id>.lock  flock serialising start/stop of one workspace
    <state_dir>/<workspace_id>/tree/       THE WORKSPACE'S FILES (/workspace in the sandbox)
    <state_dir>/<workspace_id>/credential  the workspace credential, 0600, read by the agent only
    <state_dir>/<workspace_id>/{ward,status,result}.json, agent.log, agent-state.json

Start: credential file → ward → agent → agent /healthz 200 (hydrated) → program → program
/healthz 200 → ready. Stop: SIGTERM to the ward, which stops the program, then SIGTERMs the agent
and waits for its flush; exit 0 → flushed, exit 75 or no exit in time → `StopOutcome(flushed=False)`.
A stop that flushed removes the workspace directory; one that did not keeps the tree (the only
copy of what was not pushed) and removes the credential.

A pid alone is not proof of life (pids are reused, exited children linger as zombies), so a
workload counts as running only when /proc/<pid>/stat shows the recorded start time and a
non-zombie state. Linux only, like the rest of the local stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coditect.config import get_settings
from coditect.workspaces import sandbox, syncagent
from coditect.workspaces.provisioner import (
    NOT_FOUND,
    Endpoint,
    Provisioner,
    ProvisionFailed,
    StopOutcome,
    WorkloadState,
    WorkspaceSpec,
)
from coditect.workspaces.ward import healthy, proc_start

log = logging.getLogger(__name__)
_notice_logged = False

# "{program}": the bundled program's file (bound read-only into the sandbox); "{port}": its port.
DEFAULT_COMMAND: tuple[str, ...] = (
    sys.executable, "{program}", "--host", "127.0.0.1", "--port", "{port}",
)  # fmt: skip


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of `pid`, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def _alive(pid: int, start_ticks: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == start_ticks


# The wards this process started and has not reaped yet. A ward outlives `start` by design (it is
# found again by pid through its state file), but dropping its Popen while it runs warns
# (ResourceWarning) and leaves its exit status to subprocess's private list: a ward that died on
# its own would stay a zombie until the next Popen is created. Holding the Popen lets `_reap`
# collect it with `poll()`, which also records its returncode. Per process, not per provisioner:
# any provisioner in this process may stop a ward another one started. Only held wards are
# waited for: a bare waitpid on a pid from a state file could take the exit status of an
# unrelated child of ours that reuses it (a ward another process started is not our child).
_wards: list[subprocess.Popen[bytes]] = []
_wards_lock = threading.Lock()  # start/stop/status may run in several threads


def _keep(proc: subprocess.Popen[bytes]) -> None:
    with _wards_lock:
        _wards.append(proc)


def _reap() -> None:
    """Collect every ward of this process that exited (stopped, killed from outside, crashed),
    so none lingers as a zombie."""
    with _wards_lock:
        _wards[:] = [proc for proc in _wards if proc.poll() is None]


def _free_port(host: str) -> int:
    # Bind-then-release has a small race with other binders; a program that loses it exits at
    # once and the start fails as "crashed" with the bind error in its log, which is retryable.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalProvisioner(Provisioner):
    """Workspaces as local processes. See the module docstring for the state layout.

    `command` is an argv whose ``{port}`` / ``{program}`` placeholders are replaced (default: the
    bundled workspace program); a `WorkspaceSpec.command` overrides it per workspace and
    `WorkspaceSpec.image` is ignored. `agent_command` is the sync agent's argv prefix (the flags
    come from `syncagent.argv`; None: the `workspace_sync_command` setting, else `coditect.sync`). `stop_grace` is how long the program gets between SIGTERM and
    SIGKILL; the agent gets `flush_timeout` + `syncagent.FLUSH_MARGIN`. `watch_pid` (the devstack
    supervisor) takes every workspace down with it. `sandboxed`: None = bubblewrap when it works,
    else refuse (`sandbox_unavailable`) unless CODITECT_WORKSPACE_UNSAFE_NO_SANDBOX=1.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        command: Sequence[str] = DEFAULT_COMMAND,
        agent_command: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_grace: float = 5.0,
        flush_timeout: float = 20.0,
        poll_interval: float = 0.2,
        watch_pid: int | None = None,
        sandboxed: bool | None = None,
    ) -> None:
        super().__init__(start_timeout=start_timeout, poll_interval=poll_interval)
        self.state_dir = Path(state_dir)
        self.command = tuple(command)
        self.agent_command = tuple(agent_command) if agent_command is not None else None
        self.host = host
        self.env = dict(env) if env is not None else None
        self.stop_grace = stop_grace
        self.flush_timeout = flush_timeout
        self.watch_pid = watch_pid
        self.sandboxed = sandboxed
        (self.state_dir / "locks").mkdir(parents=True, exist_ok=True)
        global _notice_logged
        if not _notice_logged:
            _notice_logged = True
            log.warning("workspaces: LocalProvisioner is the embedded default, not for production")

    # -- files ---------------------------------------------------------------------------------

    def _state_path(self, workspace_id: str) -> Path:
        return self.state_dir / f"{workspace_id}.json"

    def workspace_dir(self, workspace_id: str) -> Path:
        return self.state_dir / workspace_id

    def tree(self, workspace_id: str) -> Path:
        """The workspace's files on the host (``/workspace`` inside the sandbox)."""
        return self.workspace_dir(workspace_id) / "tree"

    def _read_state(self, workspace_id: str) -> dict[str, Any] | None:
        return _read_json(self._state_path(workspace_id), workspace_id)

    def _write_state(self, workspace_id: str, state: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=f".{workspace_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state_path(workspace_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self, workspace_id: str) -> Iterator[None]:
        # Lock files are never deleted: unlinking a lock another process waits on would let two
        # processes hold "the" lock at once.
        with open(self.state_dir / "locks" / f"{workspace_id}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- interface -----------------------------------------------------------------------------

    def _use_sandbox(self) -> bool:
        if self.sandboxed is not None:
            return self.sandboxed
        problem = sandbox.check()
        if problem is None:
            return True
        if sandbox.unsafe_allowed():
            log.warning("workspaces: UNSAFE: %s=1, running workspaces without a sandbox", sandbox.UNSAFE_ENV)
            return False
        raise ProvisionFailed(
            "sandbox_unavailable",
            f"local workspaces run only inside a sandbox and none works here ({problem}); "
            f"{sandbox.UNSAFE_ENV}=1 runs them unsandboxed (unsafe: they can read the platform's secrets)",
        )

    def start(self, spec: WorkspaceSpec) -> Endpoint:
        _reap()
        with self._locked(spec.workspace_id):
            state = self._read_state(spec.workspace_id)
            if state is not None:
                if _alive(state["pid"], state["proc_start"]):
                    return self._wait(spec.workspace_id, state, None)  # adopt, even if still starting
                self._remove(spec.workspace_id, state)  # stale: the process is gone
            sandboxed = self._use_sandbox()
            wdir = self.workspace_dir(spec.workspace_id)
            tree = self.tree(spec.workspace_id)
            tree.mkdir(parents=True, exist_ok=True)
            wdir.chmod(0o700)
            for leftover in ("result.json", "status.json"):
                with contextlib.suppress(FileNotFoundError):
                    (wdir / leftover).unlink()
            port = _free_port(self.host)
            program_path = sandbox.INSIDE_PROGRAM if sandboxed else sandbox.program_file()
            argv = [
                arg.replace("{port}", str(port)).replace("{program}", program_path)
                for arg in (spec.command or self.command)
            ]
            config: dict[str, Any] = {
                "dir": str(wdir),
                "cwd": str(tree),
                "program": sandbox.wrap(argv, tree) if sandboxed else argv,
                "program_env": None if sandboxed else self.env,
                "agent": None,
                "agent_port": None,
                "stop_grace": self.stop_grace,
                "flush_wait": self.flush_timeout + syncagent.FLUSH_MARGIN,
                "watch_pid": self.watch_pid,
                "watch_start": proc_start(self.watch_pid) if self.watch_pid else None,
            }
            if spec.credential is not None and spec.api_url is not None:
                config["agent_port"] = agent_port = _free_port(self.host)
                config["agent"] = self._agent_argv(spec, wdir, tree, agent_port)
            ward_json = wdir / "ward.json"
            ward_json.write_text(json.dumps(config))
            log_path = self.state_dir / f"{spec.workspace_id}.log"
            with open(log_path, "ab") as log_file:
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "coditect.workspaces.ward", str(ward_json)],
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # own session and group: survives us, killable as one
                        close_fds=True,
                        env=self.env,
                    )
                except OSError as exc:
                    raise ProvisionFailed("invalid_spec", f"cannot run the ward: {exc.strerror}") from None
            _keep(proc)
            stat = _proc_stat(proc.pid)
            state = {
                "workspace_id": spec.workspace_id,
                "tenant_id": spec.tenant_id,
                "user_id": spec.user_id,
                "session_id": spec.session_id,
                "pid": proc.pid,
                "proc_start": stat[1] if stat else -1,
                "host": self.host,
                "port": port,
                "agent_port": config["agent_port"],
                "command": argv,
                "tree": str(tree),
                "sandboxed": sandboxed,
                "started_at": time.time(),
            }
            self._write_state(spec.workspace_id, state)
            log.info("workspaces: started %s ward pid=%d port=%d", spec.workspace_id, proc.pid, port)
            return self._wait(spec.workspace_id, state, proc)

    def _agent_argv(self, spec: WorkspaceSpec, wdir: Path, tree: Path, port: int) -> list[str]:
        credential_file = wdir / "credential"
        fd = os.open(credential_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(spec.credential or "")
        assert spec.api_url is not None
        command = self.agent_command or get_settings().workspace_sync_command or syncagent.DEFAULT_COMMAND
        return syncagent.argv(
            command,
            api_url=spec.api_url,
            session_id=spec.session_id,
            workspace_id=spec.workspace_id,
            root=str(tree),
            credential_file=str(credential_file),
            health_port=port,
            state_file=str(wdir / "agent-state.json"),
            flush_timeout=self.flush_timeout,
        )

    def _wait(
        self, workspace_id: str, state: Mapping[str, Any], proc: subprocess.Popen[bytes] | None
    ) -> Endpoint:
        """Wait for the program's /healthz (the ward starts it after hydration); on failure stop
        everything and remove the state."""
        host, port, pid = state["host"], state["port"], state["pid"]

        def probe() -> Endpoint | None:
            code = proc.poll() if proc is not None else None
            if code is not None or (proc is None and not _alive(pid, state["proc_start"])):
                result = _read_json(self.workspace_dir(workspace_id) / "result.json", workspace_id) or {}
                why = result.get("message") or f"workspace process exited with code {code}"
                raise ProvisionFailed("crashed", f"{why}{self._tail(workspace_id)}")
            return Endpoint(host, port) if healthy(host, port) else None

        try:
            return self.wait_until_ready(probe, what=f"workspace {workspace_id}")
        except ProvisionFailed:
            self._remove(workspace_id, state)
            raise

    def _tail(self, workspace_id: str, limit: int = 400) -> str:
        text = ""
        for path in (
            self.state_dir / f"{workspace_id}.log",
            self.workspace_dir(workspace_id) / "program.log",
        ):
            with contextlib.suppress(OSError):
                text += path.read_bytes()[-limit:].decode(errors="replace")
        return f"; last output: {text.strip()}" if text.strip() else ""

    def stop(self, workspace_id: str) -> StopOutcome | None:
        with self._locked(workspace_id):
            state = self._read_state(workspace_id)
            outcome = self._remove(workspace_id, state) if state is not None else None
            # A failed start keeps its log for diagnosis; an explicit stop leaves nothing behind.
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / f"{workspace_id}.log").unlink()
            return outcome

    def _remove(self, workspace_id: str, state: Mapping[str, Any]) -> StopOutcome:
        """SIGTERM the ward (it stops the program, then lets the agent flush); kill whatever is
        left after the bounded wait; forget the workload. Returns whether the flush completed."""
        pid, start = state["pid"], state["proc_start"]
        wdir = self.workspace_dir(workspace_id)
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace + self.flush_timeout + syncagent.FLUSH_MARGIN + 2
            while _alive(pid, start) and time.monotonic() < deadline:
                _reap()
                time.sleep(0.05)
        # The ward hung or was killed: its children's groups go too (start times guard pid reuse).
        ward_status = _read_json(wdir / "status.json", workspace_id) or {}
        for gid, gstart in ((pid, start), *_children(ward_status)):
            if _alive(gid, gstart):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(gid, signal.SIGKILL)
        # Stragglers of the ward's own group. The kernel does not hand out a pid while a group
        # still uses it as its id, so a live process with this pid and another start time means
        # the group is gone and the pid reused: that group is someone else's.
        stat = _proc_stat(pid)
        if stat is None or stat[1] == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        while _alive(pid, start):
            _reap()
            time.sleep(0.01)
        _reap()
        result = _read_json(wdir / "result.json", workspace_id)
        flushed = result is not None and result.get("agent_exit") == 0
        outcome = StopOutcome(
            flushed=flushed, detail="" if flushed else str((result or {}).get("agent_tail", ""))
        )
        if flushed or not (wdir / "tree").is_dir() or not any((wdir / "tree").iterdir()):
            shutil.rmtree(wdir, ignore_errors=True)
        else:  # keep the only copy of what was not pushed; the credential is dead anyway
            with contextlib.suppress(FileNotFoundError):
                (wdir / "credential").unlink()
            log.warning(
                "workspaces: %s stopped without a confirmed flush; tree kept at %s", workspace_id, wdir
            )
        with contextlib.suppress(FileNotFoundError):
            self._state_path(workspace_id).unlink()
        log.info("workspaces: stopped %s (flushed=%s)", workspace_id, flushed)
        return outcome

    def status(self, workspace_id: str) -> WorkloadState:
        _reap()
        state = self._read_state(workspace_id)
        if state is None:
            return NOT_FOUND
        return self._observe(state)

    def _observe(self, state: Mapping[str, Any]) -> WorkloadState:
        if not _alive(state["pid"], state["proc_start"]):
            return WorkloadState(running=False, ready=False, endpoint=None, reason="exited")
        if not healthy(state["host"], state["port"]):
            return WorkloadState(running=True, ready=False, endpoint=None, reason="starting")
        return WorkloadState(running=True, ready=True, endpoint=Endpoint(state["host"], state["port"]))

    def list_workloads(self) -> dict[str, WorkloadState]:
        _reap()
        result: dict[str, WorkloadState] = {}
        for path in sorted(self.state_dir.glob("*.json")):
            state = self._read_state(path.stem)
            if state is not None:
                result[path.stem] = self._observe(state)
        return result


def _read_json(path: Path, workspace_id: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # cannot happen with atomic writes, unless edited by hand
        log.warning("workspaces: unreadable %s for %s", path.name, workspace_id)
        return None
    return data if isinstance(data, dict) else None


def _children(ward_status: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(pid, start ticks) of the agent and the program a ward recorded."""
    out = []
    for name in ("program", "agent"):
        pid, start = ward_status.get(name), ward_status.get(f"{name}_start")
        if isinstance(pid, int) and isinstance(start, int):
            out.append((pid, start))
    return out
