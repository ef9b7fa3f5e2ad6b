"""The agent's life: health server first (503), watcher, hydration, then push + pull + reports;
on SIGTERM/SIGINT stop watching, flush, send the final report, exit 0 — or 75 after
`--flush-timeout` seconds with the pending paths on stderr and state `flush_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import generate_latest

from coditect.sync.client import Api, ApiFailure, Unreachable
from coditect.sync.context import Context
from coditect.sync.hydrate import hydrate
from coditect.sync.pull import follow
from coditect.sync.push import Pusher
from coditect.sync.report import METRICS, RETRIES
from coditect.sync.state import State

log = logging.getLogger("coditect.sync")

EXIT_FLUSH_TIMEOUT = 75  # EX_TEMPFAIL: the workspace side reports sync_flush_timeout
REPORT_INTERVAL = 2.0
DEFAULT_MAX_FILE_SIZE = 100 * 1024 * 1024


@dataclass(frozen=True)
class Options:
    api_url: str
    session_id: str
    workspace_id: str
    root: Path
    credential_file: Path
    health_port: int
    state_file: Path
    flush_timeout: float = 20.0


class Agent:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        credential = opts.credential_file.read_text().strip()
        api = Api(opts.api_url, opts.session_id, opts.workspace_id, credential)
        # The files API's size limit is the platform setting CODITECT_MAX_FILE_SIZE (same default).
        limit = int(os.environ.get("CODITECT_MAX_FILE_SIZE") or DEFAULT_MAX_FILE_SIZE)
        self.ctx = Context(opts.root.resolve(), api, State.load(opts.state_file), limit)
        self.pusher = Pusher(self.ctx)
        self.hydrated = False
        self.stop = asyncio.Event()
        self._report_refused = False
        self._sent: str | None = None
        self._sent_at = 0.0

    # -- health ------------------------------------------------------------------------------
    async def serve_health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
            status, ctype, body = 404, "application/json", b'{"error":"not_found"}'
            if path == "/healthz":
                status = 200 if self.hydrated else 503
                body = json.dumps({"ready": self.hydrated, "state": self.ctx.report.state}).encode()
            elif path == "/status":
                status, body = 200, json.dumps(self.current_report()).encode()
            elif path == "/metrics":
                status, ctype, body = 200, "text/plain; version=0.0.4", generate_latest(METRICS)
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    # -- reports -----------------------------------------------------------------------------
    def current_report(self) -> dict[str, object]:
        self.ctx.report.set_pending(sorted(self.ctx.dirty))
        return self.ctx.report.as_json()

    async def send_report(self, force: bool = False) -> None:
        body = self.current_report()
        text = json.dumps(body, sort_keys=True)
        if text == self._sent or (not force and time.monotonic() - self._sent_at < REPORT_INTERVAL):
            return
        try:
            await self.ctx.api.report(body)
        except ApiFailure as exc:
            if exc.status in (403, 404):
                if not self._report_refused:
                    log.warning(
                        "the report route answered %s %s; reports stay on /status", exc.status, exc.code
                    )
                    self._report_refused = True
            else:
                log.warning("report refused: %s", exc)
        except Unreachable:
            return  # sent again on the next change or tick
        self._sent, self._sent_at = text, time.monotonic()

    async def report_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self.send_report()

    # -- life --------------------------------------------------------------------------------
    async def hydrate_with_retries(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                await hydrate(self.ctx)
                return
            except (Unreachable, ApiFailure) as exc:
                RETRIES.inc()
                log.warning("hydration: %s; retrying in %.1f s", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        server = await asyncio.start_server(self.serve_health, "127.0.0.1", self.opts.health_port)
        self.ctx.root.mkdir(parents=True, exist_ok=True)
        watch_stop, watching = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(self.pusher.watch(watch_stop, watching)),
                 asyncio.create_task(self.report_loop())]  # fmt: skip
        await watching.wait()
        await self.hydrate_with_retries()
        if not self.stop.is_set():
            self.hydrated = True
            self.ctx.report.state = "syncing"
            log.info("ready: %s is in step with session %s", self.ctx.root, self.opts.session_id)
            tasks.append(asyncio.create_task(self.pusher.run(self.stop)))
            tasks.append(asyncio.create_task(follow(self.ctx, self.stop)))
            await self.stop.wait()
        code = await self.flush(watch_stop)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        self.ctx.scratch.clear()
        await self.ctx.api.aclose()
        return code

    async def flush(self, watch_stop: asyncio.Event) -> int:
        """Push everything pending, within --flush-timeout; 0 when done, 75 otherwise."""
        ctx = self.ctx
        ctx.report.state = "flushing"
        await asyncio.sleep(0.05)  # the watcher's last batch
        watch_stop.set()
        deadline = time.monotonic() + self.opts.flush_timeout
        if self.hydrated:
            self.pusher.scan()  # catch what the watcher had not reported yet
            while ctx.dirty and time.monotonic() < deadline:
                await self._flush_step(deadline)
        ctx.save_state(force=True)
        if ctx.dirty:
            ctx.report.state = "flush_timeout"
            pending = sorted(ctx.dirty)
            print("sync flush timed out; not in the store:", *pending, sep="\n  ", file=sys.stderr)
            code = EXIT_FLUSH_TIMEOUT
        else:
            ctx.report.state = "stopped"
            code = 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.send_report(force=True), 5)
        return code

    async def _flush_step(self, deadline: float) -> None:
        wait = self.pusher.retry_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(min(wait, max(deadline - time.monotonic(), 0)))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.pusher.push(self.pusher.ready_paths(True)), deadline - time.monotonic()
            )
