"""The ward: the one process that owns a local workspace's sync agent and program.

    python -m coditect.workspaces.ward <ward.json>

`LocalProvisioner` writes `ward.json` (no secret in it: the credential stays in its own 0600
file, whose path the agent gets) and starts the ward detached (own session), so it outlives the
short-lived function call that started it. The ward:

1. starts the sync agent (its own process group, parent-death signal SIGTERM) and waits for its
   `GET /healthz` to answer 200 (the tree is hydrated);
2. starts the workspace program (in the sandbox, its own process group, cwd = the tree);
3. waits — on pidfds and a signal pipe, no polling — for SIGTERM (a stop), the program's exit
   (a crash), the agent's exit (restarted with backoff: it reconciles by hash) or the death of
   the process it watches (`watch_pid`: the devstack supervisor, so that even a `kill -9` of
   the stack leaves no workspace running);
4. tears down: SIGTERM to the program's group, SIGKILL after `stop_grace`; then SIGTERM to the
   agent, which flushes, and waits up to `flush_wait` for its exit (SIGKILL after);
5. writes `result.json` — ``{"phase", "agent_exit", "agent_tail", "message"}`` — and exits.

`status.json` (atomic) carries the phase (hydrating, running, stopping, done, failed) and the
agent's and program's pids with their start times, so another process can kill what a dead ward
left behind. Linux only (pidfd_open, /proc).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def proc_start(pid: int) -> int:
    """Start time of `pid` in clock ticks (field 22 of /proc/<pid>/stat), -1 when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _parent_death_term() -> None:
    """preexec: SIGTERM this child when the ward dies (the ward is long-lived, so this holds)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def healthy(host: str, port: int, timeout: float = 1.0) -> bool:
    """`GET /healthz` on host:port answers 200 (the agent's and the program's readiness)."""
    # http.client, not httpx: no proxy settings from the environment can reroute loopback probes.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return ""


class Ward:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = config
        self.dir = Path(config["dir"])
        self.status: dict[str, Any] = {"phase": "hydrating", "ward": os.getpid()}
        self.agent: subprocess.Popen[bytes] | None = None
        self.program: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.sel = selectors.DefaultSelector()
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(wake_w)
        self.signalled = False
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.watch_fd: int | None = None
        watch = config.get("watch_pid")
        if watch:
            try:
                self.watch_fd = os.pidfd_open(int(watch))
            except ProcessLookupError:
                self.signalled = True  # the stack is already gone: tear down at once
            else:
                if proc_start(int(watch)) != config.get("watch_start", -1):
                    self.signalled = True  # pid reused: the stack we belong to is gone
                self.sel.register(self.watch_fd, selectors.EVENT_READ, "watch")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True

    def _save(self, **changes: Any) -> None:
        self.status.update(changes)
        _write_json(self.dir / "status.json", self.status)

    def _spawn(self, argv: list[str], log_name: str, *, env: dict[str, str] | None, cwd: str | None,
               pdeath: bool) -> subprocess.Popen[bytes]:  # fmt: skip
        with open(self.dir / log_name, "ab") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                start_new_session=True, close_fds=True, preexec_fn=_parent_death_term if pdeath else None,
            )  # fmt: skip

    def _start_agent(self) -> None:
        self.agent = self._spawn(self.cfg["agent"], "agent.log", env=None, cwd=None, pdeath=True)
        self._save(agent=self.agent.pid, agent_start=proc_start(self.agent.pid))

    def _wait_events(self, timeout: float | None) -> set[str]:
        fds: dict[int, str] = {}
        for name, proc in (("agent", self.agent), ("program", self.program)):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    fds[os.pidfd_open(proc.pid)] = name
        for fd, name in fds.items():
            self.sel.register(fd, selectors.EVENT_READ, name)
        try:
            ready = self.sel.select(timeout)
        finally:
            for fd in fds:
                self.sel.unregister(fd)
                os.close(fd)
        events = {str(key.data) for key, _ in ready}
        if "signal" in events:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 512)
        return events | ({"signal"} if self.signalled else set())

    def run(self) -> None:
        message = None
        try:
            message = self._run()
        finally:
            self._teardown(message)

    def _run(self) -> str | None:
        if self.cfg.get("agent"):
            self._start_agent()
            while not healthy("127.0.0.1", int(self.cfg["agent_port"])):
                assert self.agent is not None
                if self.agent.poll() is not None:
                    tail = _tail(self.dir / "agent.log", 400)
                    return f"the sync agent exited with code {self.agent.returncode} while hydrating: {tail}"
                events = self._wait_events(0.1)
                if "signal" in events or "watch" in events:
                    return None
        self.program = self._spawn(
            self.cfg["program"], "program.log", env=self.cfg.get("program_env"), cwd=self.cfg["cwd"],
            pdeath=False,  # bwrap --die-with-parent
        )  # fmt: skip
        self._save(phase="running", program=self.program.pid, program_start=proc_start(self.program.pid))
        while True:
            events = self._wait_events(None)
            if "signal" in events or "watch" in events:
                return None
            if self.program.poll() is not None:
                return f"the workspace program exited with code {self.program.returncode}"
            if self.agent is not None and self.agent.poll() is not None:
                # Crashed or killed: restart it (it reconciles the tree against the store by hash).
                self.restarts += 1
                time.sleep(min(2.0**self.restarts, 5.0))
                if self.signalled:
                    return None
                self._start_agent()

    def _stop(self, proc: subprocess.Popen[bytes] | None, wait: float) -> int | None:
        """SIGTERM `proc`'s group, SIGKILL it after `wait`; the exit code when it exited in time."""
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        code: int | None
        try:
            code = proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, or the hung leader
        proc.wait()
        return code

    def _teardown(self, message: str | None) -> None:
        failed = message is not None and self.status["phase"] == "hydrating"
        self._save(phase="stopping")
        self._stop(self.program, float(self.cfg["stop_grace"]))
        agent_exit = self._stop(self.agent, float(self.cfg["flush_wait"]))
        result = {
            "phase": "failed" if failed else "done",
            "message": message,
            "agent_exit": agent_exit if self.agent is not None else 0,
            "agent_tail": _tail(self.dir / "agent.log") if agent_exit != 0 else "",
        }
        _write_json(self.dir / "result.json", result)
        self._save(phase=result["phase"])


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(args[0]).read_text())
    Ward(config).run()


if __name__ == "__main__":
    main()
