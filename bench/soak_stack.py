"""The soak's stack and its faults: one real local stack (tests/e2e/stack.py's `start_stack`, i.e.
`python -m coditect.devstack serve` with its own data dir and a free port), function processes
killed with SIGKILL, the whole stack killed with SIGKILL and started again on the same data dir
and port, and slow-body clients.

Only processes that descend from THIS soak's supervisor are ever signalled: pids come from the
stack's own `<data dir>/devstack.json` and each is checked against /proc's parent chain (other
stacks run on the same machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.stack import RunningStack, start_stack  # noqa: E402

# The functions the users' writes go through; one is killed at a time, in turn.
KILLABLE = ("files", "messages", "sessions", "conversations")
STACK_ENV = {
    "CODITECT_DEVSTACK_EXTRA": "",  # no test-only functions in the soak's stack
    "CODITECT_FRONTDOOR_BODY_TIMEOUT": "10",  # the stack's default, not the tests' 3 s
    # Every simulated user registers from 127.0.0.1: lift the per-IP register limit (20 / 10 min).
    "CODITECT_REGISTER_IP_LIMIT": "100000",
}


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # "pid (comm) state ppid ..."


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its new parent to reap it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def descends_from(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        parent = parent_of(pid)
        if parent is None:
            return False
        pid, seen = parent, seen + 1
    return False


def descendants(root: int) -> list[int]:
    """Every live process below `root` (from one /proc scan), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue += children.get(pid, [])
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Stack:
    """The soak's stack: started once, its functions killed, the whole of it killed and restarted."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.running: RunningStack = start_stack(work_dir, STACK_ENV)
        self.port = self.running.url.rsplit(":", 1)[1]
        self.function_kills: Counter[str] = Counter()
        self.stack_kills = 0
        self.restart_seconds: list[float] = []
        self.restarts_before_kill = 0  # function restarts counted by supervisors since killed

    @property
    def url(self) -> str:
        return self.running.url

    def function_pids(self, name: str) -> list[int]:
        """The function's processes as devstack.json lists them (`replicas`: one per process,
        CODITECT_REPLICAS), kept only if they descend from this stack's supervisor."""
        entry: dict[str, Any] = self.running.state()["functions"][name]
        pids = [int(r["pid"]) for r in entry.get("replicas") or [] if r.get("pid")]
        return [p for p in pids if descends_from(p, self.running.process.pid)]

    def kill_function(self, name: str) -> bool:
        """SIGKILL one process of `name` and everything below it (its workers); the supervisor
        restarts it. False when no live process of it was found."""
        pids = self.function_pids(name)
        if not pids:
            return False
        victim = pids[0]
        kill_all([victim, *descendants(victim)])
        self.function_kills[name] += 1
        return True

    def function_restarts(self) -> int:
        functions = self.running.state()["functions"].values()
        return self.restarts_before_kill + sum(
            int(r.get("restarts") or 0) for f in functions for r in f.get("replicas") or []
        )

    def kill_and_restart(self) -> None:
        """SIGKILL the supervisor and every process below it at once (the tree is read first, so
        nothing re-parented escapes), wait for them to be gone, start again on the same data dir
        and port."""
        self.restarts_before_kill = self.function_restarts()
        supervisor = self.running.process.pid
        tree = [supervisor, *descendants(supervisor)]
        kill_all(tree[::-1])  # leaves first: none lives to get its parent-death SIGTERM first
        self.running.process.wait(30)
        deadline = time.monotonic() + 30
        while any(alive(p) for p in tree[1:]):
            if time.monotonic() > deadline:
                raise RuntimeError("processes of the killed stack did not go away")
            time.sleep(0.05)
        self.stack_kills += 1
        started = time.monotonic()
        self.running = start_stack(self.work_dir, {**STACK_ENV, "CODITECT_PORT": self.port})
        self.restart_seconds.append(time.monotonic() - started)

    def stop(self) -> int:
        return self.running.stop()


async def slow_client(url: str, path: str, token: str | None, until: float, outcomes: Counter[str]) -> None:
    """PUT a 4 KiB body at one byte per second, again and again until `until`; count how each
    attempt ended (the status the server answered, or how the connection ended)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Length: 4096\r\n\r\n".encode()
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            outcomes["connect_failed"] += 1
            await asyncio.sleep(1)
            continue
        outcomes[await _trickle(reader, writer, head, until)] += 1
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, until: float
) -> str:
    try:
        writer.write(head)
        while time.monotonic() < until:
            writer.write(b"x")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(64), timeout=1.0)
            except TimeoutError:
                continue
            return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "closed"
    except OSError:
        return "reset"
    return "still_sending_at_end"
