"""Child processes of the local stack: one per function, each in its own process group.

A child is started in a new session (so a signal to its group reaches gunicorn's master and its
workers, and a Ctrl-C in the terminal reaches only the supervisor, which then stops the children
in order) with PR_SET_PDEATHSIG, so even a SIGKILLed supervisor leaves no function behind. Its
stdout and stderr are appended to its own log file. A child that exits on its own is restarted
with exponential backoff (1 s, 2 s, … 30 s; reset after a minute of good health) and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

Report = Callable[[str], None]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def answers(url: str, timeout: float = 1.0) -> bool:
    """True when something answers HTTP at `url` (any status: the process is serving)."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            await client.get(url)
    except httpx.HTTPError:
        return False
    return True


class Child:
    """One supervised process. `url`: where it answers HTTP once ready (None: no readiness check)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        url: str | None,
        report: Report,
        grace: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.cwd = name, list(argv), env, cwd
        self.log_path, self.url, self.report, self.grace = log_path, url, report, grace
        self.on_change = on_change or (lambda: None)
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.stopping = False
        self._watch: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"=== {datetime.now(UTC).isoformat()} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started_at = time.monotonic()
        self.on_change()

    async def wait_ready(self, timeout: float) -> bool:
        """Poll until the child answers HTTP; False when it exits first or time runs out."""
        if self.url is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.returncode is not None:
                return False
            if await answers(self.url):
                return True
            await asyncio.sleep(0.1)
        return False

    def supervise(self, ready_timeout: float) -> None:
        """Watch in the background: restart (and report) whenever the child exits by itself."""
        self._watch = asyncio.ensure_future(self._supervise(ready_timeout))

    async def _supervise(self, ready_timeout: float) -> None:
        delay = 1.0
        while not self.stopping and self.proc is not None:
            code = await self.proc.wait()
            if self.stopping:
                return
            # Its workers may outlive a killed master and hold the port: the whole group goes.
            signal_group(self.proc.pid, signal.SIGKILL)
            if time.monotonic() - self.started_at > 60:
                delay = 1.0
            with self.log_path.open("a") as log:
                log.write(f"=== {datetime.now(UTC).isoformat()} exited with {_describe(code)}; restarting\n")
            self.report(
                f"{self.name} exited with {_describe(code)}; restarting in {delay:.0f}s (see {self.log_path})"
            )
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)
            if self.stopping:
                return
            self.restarts += 1
            await self.start()
            if await self.wait_ready(ready_timeout):
                self.report(f"{self.name} restarted (pid {self.pid}, restart #{self.restarts})")

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after the grace period, then reap."""
        self.stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self.proc
        if proc is None:
            return
        signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if proc.returncode is not None and not group_alive(proc.pid):
                break
            await asyncio.sleep(0.05)
        # Also when the leader exited in time: stragglers left in its group go too.
        signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
