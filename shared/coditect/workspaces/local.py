"""LocalProvisioner: the embedded default. Each workspace is a real child process on loopback.

The process is detached (its own session and process group) so it outlives the short-lived
function process that started it; the relay, the cron reconcile and the next CloudEvent delivery
are other processes, so all state lives in files under `state_dir`:

    <state_dir>/<workspace_id>.json        pid, port, command, started_at, proc start time (atomic)
    <state_dir>/<workspace_id>.log         the program's stdout/stderr (kept after a failed start)
    <state_dir>/locks/<workspace_id>.lock  flock serialising start/stop of one workspace

A pid alone is not proof of life (pids are reused, exited children linger as zombies), so a
workload counts as running only when /proc/<pid>/stat shows the recorded start time and a
non-zombie state. Linux only, like the rest of the local stack.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coditect.workspaces.provisioner import (
    NOT_FOUND,
    Endpoint,
    Provisioner,
    ProvisionFailed,
    WorkloadState,
    WorkspaceSpec,
)

log = logging.getLogger(__name__)
_notice_logged = False

DEFAULT_COMMAND: tuple[str, ...] = (
    sys.executable, "-m", "coditect.workspaces.program", "--host", "127.0.0.1", "--port", "{port}",
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


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _free_port(host: str) -> int:
    # Bind-then-release has a small race with other binders; a program that loses it exits at
    # once and the start fails as "crashed" with the bind error in its log, which is retryable.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _healthy(host: str, port: int, timeout: float = 1.0) -> bool:
    # http.client, not httpx: no proxy settings from the environment can reroute loopback probes.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class LocalProvisioner(Provisioner):
    """Workspaces as local processes. See the module docstring for the state layout.

    `command` is an argv whose ``{port}`` placeholders are replaced by the chosen port (default:
    the bundled workspace program); a `WorkspaceSpec.command` overrides it per workspace and
    `WorkspaceSpec.image` is ignored. `stop_grace` is how long SIGTERM gets before SIGKILL.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        command: Sequence[str] = DEFAULT_COMMAND,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_grace: float = 5.0,
        poll_interval: float = 0.2,
    ) -> None:
        super().__init__(start_timeout=start_timeout, poll_interval=poll_interval)
        self.state_dir = Path(state_dir)
        self.command = tuple(command)
        self.host = host
        self.env = dict(env) if env is not None else None
        self.stop_grace = stop_grace
        (self.state_dir / "locks").mkdir(parents=True, exist_ok=True)
        global _notice_logged
        if not _notice_logged:
            _notice_logged = True
            log.warning("workspaces: LocalProvisioner is the embedded default, not for production")

    # -- files ---------------------------------------------------------------------------------

    def _state_path(self, workspace_id: str) -> Path:
        return self.state_dir / f"{workspace_id}.json"

    def _read_state(self, workspace_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._state_path(workspace_id).read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # cannot happen with atomic writes, unless edited by hand
            log.warning("workspaces: unreadable state file for %s", workspace_id)
            return None
        return data if isinstance(data, dict) else None

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

    def start(self, spec: WorkspaceSpec) -> Endpoint:
        with self._locked(spec.workspace_id):
            state = self._read_state(spec.workspace_id)
            if state is not None:
                if _alive(state["pid"], state["proc_start"]):
                    return self._wait(spec.workspace_id, state, None)  # adopt, even if still starting
                self._remove(spec.workspace_id, state)  # stale: the process is gone
            port = _free_port(self.host)
            argv = [arg.replace("{port}", str(port)) for arg in (spec.command or self.command)]
            log_path = self.state_dir / f"{spec.workspace_id}.log"
            with open(log_path, "ab") as log_file:
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # own session and group: survives us, killable as one
                        close_fds=True,
                        env=self.env,
                    )
                except OSError as exc:
                    raise ProvisionFailed("invalid_spec", f"cannot run {argv[0]!r}: {exc.strerror}") from None
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
                "command": argv,
                "started_at": time.time(),
            }
            self._write_state(spec.workspace_id, state)
            log.info("workspaces: started %s pid=%d port=%d", spec.workspace_id, proc.pid, port)
            return self._wait(spec.workspace_id, state, proc)

    def _wait(
        self, workspace_id: str, state: Mapping[str, Any], proc: subprocess.Popen[bytes] | None
    ) -> Endpoint:
        """Wait for /healthz; on failure stop the process and remove its state."""
        host, port, pid = state["host"], state["port"], state["pid"]

        def probe() -> Endpoint | None:
            code = proc.poll() if proc is not None else None
            if code is not None or (proc is None and not _alive(pid, state["proc_start"])):
                raise ProvisionFailed(
                    "crashed", f"workspace process exited with code {code}{self._tail(workspace_id)}"
                )
            return Endpoint(host, port) if _healthy(host, port) else None

        try:
            return self.wait_until_ready(probe, what=f"workspace {workspace_id}")
        except ProvisionFailed:
            self._remove(workspace_id, state)
            raise

    def _tail(self, workspace_id: str, limit: int = 400) -> str:
        try:
            text = (self.state_dir / f"{workspace_id}.log").read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""
        return f"; last output: {text.strip()}" if text.strip() else ""

    def stop(self, workspace_id: str) -> None:
        with self._locked(workspace_id):
            state = self._read_state(workspace_id)
            if state is not None:
                self._remove(workspace_id, state)
            # A failed start keeps its log for diagnosis; an explicit stop leaves nothing behind.
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / f"{workspace_id}.log").unlink()

    def _remove(self, workspace_id: str, state: Mapping[str, Any]) -> None:
        """SIGTERM the process group, SIGKILL after the grace period, then forget it."""
        pid, start = state["pid"], state["proc_start"]
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace
            while _alive(pid, start) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.05)
            # Also when the leader exited in time: stragglers left in its group go too. The
            # group id cannot have been reused while any member is alive.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid, start):
                _reap(pid)
                time.sleep(0.01)
        _reap(pid)
        with contextlib.suppress(FileNotFoundError):
            self._state_path(workspace_id).unlink()
        log.info("workspaces: stopped %s", workspace_id)

    def status(self, workspace_id: str) -> WorkloadState:
        state = self._read_state(workspace_id)
        if state is None:
            return NOT_FOUND
        return self._observe(state)

    def _observe(self, state: Mapping[str, Any]) -> WorkloadState:
        if not _alive(state["pid"], state["proc_start"]):
            return WorkloadState(running=False, ready=False, endpoint=None, reason="exited")
        if not _healthy(state["host"], state["port"]):
            return WorkloadState(running=True, ready=False, endpoint=None, reason="starting")
        return WorkloadState(running=True, ready=True, endpoint=Endpoint(state["host"], state["port"]))

    def list_workloads(self) -> dict[str, WorkloadState]:
        result: dict[str, WorkloadState] = {}
        for path in sorted(self.state_dir.glob("*.json")):
            state = self._read_state(path.stem)
            if state is not None:
                result[path.stem] = self._observe(state)
        return result
