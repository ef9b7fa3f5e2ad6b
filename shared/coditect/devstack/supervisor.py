"""The supervisor: brings the whole local stack up, keeps it up, and takes all of it down.

Order of start: data directory and signing keys → broker (functions need `K_SINK`) → every
function process (in parallel) → wait until each answers HTTP → gateway → scheduler → the table.
Order of stop (Ctrl-C / SIGTERM): scheduler → gateway → functions (process groups, SIGTERM then
SIGKILL after the grace) → broker (pending deliveries are dead-lettered) → local workspace
processes recorded in <data dir>/workspaces/.

`<data dir>/devstack.json` describes the running stack (urls, pids, logs); tests read it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from coditect import event_types
from coditect.devstack.broker import Broker, Subscriber, subscriptions_of
from coditect.devstack.children import Child
from coditect.devstack.gateway import Gateway
from coditect.devstack.plan import LOOPBACK, Planned, StackSettings, plan
from coditect.devstack.routing import RouteTable
from coditect.devstack.scheduler import Scheduler
from coditect.devstack.servers import PortInUse, Served, bind, log_to_file
from coditect.ops.jobs import SCHEDULES

log = logging.getLogger("coditect.devstack")


class AlreadyRunning(Exception):
    """Another supervisor owns this data directory."""


class Stack:
    def __init__(self, settings: StackSettings, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        self.planned: list[Planned] = []
        self.children: dict[str, Child] = {}
        self.gateway: Served | None = None
        self.broker_server: Served | None = None
        self.broker: Broker | None = None
        self.scheduler: Scheduler | None = None
        self.stopping = asyncio.Event()

    def say(self, line: str) -> None:
        """One short line on the terminal (and in logs/devstack.log)."""
        log.info(line)
        print(f"[devstack] {line}", file=self.out, flush=True)

    # -- start -------------------------------------------------------------------------------
    def prepare(self) -> None:
        s = self.settings
        for directory in (s.data_dir, s.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._refuse_second_supervisor()
        from coditect.identity.signing_keys import ensure_keys

        ensure_keys(s.keys_dir)
        # Non-signing functions mount only the public keys in production; mirror that here.
        s.public_keys_dir.mkdir(exist_ok=True)
        for path in s.keys_dir.iterdir():
            if path.suffix == ".pub" or path.name == "active":
                shutil.copyfile(path, s.public_keys_dir / path.name)
        log_to_file(s.logs_dir / "devstack.log", "coditect.devstack")
        log_to_file(
            s.logs_dir / "gateway.log",
            "coditect.devstack.gateway",
            "uvicorn",
            "uvicorn.error",
            "uvicorn.access",
        )
        log_to_file(s.logs_dir / "broker.log", "coditect.devstack.broker")
        log_to_file(s.logs_dir / "scheduler.log", "coditect.devstack.scheduler")

    def _owns_state_file(self) -> bool:
        try:
            return bool(json.loads(self.settings.state_file.read_text())["supervisor_pid"] == os.getpid())
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _refuse_second_supervisor(self) -> None:
        try:
            previous = json.loads(self.settings.state_file.read_text())
            pid = int(previous["supervisor_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if pid != os.getpid() and Path(f"/proc/{pid}").exists():
            raise AlreadyRunning(f"a local stack (pid {pid}) already runs on {self.settings.data_dir}")

    async def start(self) -> None:
        s = self.settings
        started = time.monotonic()
        self.prepare()
        self.planned = plan(s)
        present = [p for p in self.planned if p.present]
        for p in self.planned:
            if not p.present:
                self.say(f"WARNING: skipping {p.name}: {p.source} does not exist yet")
        subscribers = [(p.spec.events, Subscriber(p.name, p.url + "/")) for p in present if p.spec.events]
        self.broker = Broker(
            subscriptions_of(subscribers),
            s.dead_letter,
            attempts=int(os.environ.get("CODITECT_BROKER_ATTEMPTS") or 6),
            backoff=float(os.environ.get("CODITECT_BROKER_BACKOFF") or 0.5),
        )
        self.broker_server = Served(self.broker, bind(LOOPBACK, s.broker_port), access_log=False)
        gateway_sock = bind(s.host, s.port)  # fail before starting anything when the port is taken
        await self.broker_server.start()
        broker_url = f"http://{LOOPBACK}:{self.broker_server.port}/"
        base_env = dict(os.environ)
        base_env.setdefault("CODITECT_TRUSTED_PROXY_HOPS", "1")  # the gateway is one proxy hop
        # The browser sees one origin, the gateway's: ticket URLs, CORS and the relay's Origin
        # check must name its real port, not the default 8080.
        port = gateway_sock.getsockname()[1]
        base_env.setdefault("CODITECT_PUBLIC_BASE_URL", f"http://localhost:{port}")
        base_env.setdefault(
            "CODITECT_CORS_ORIGINS", json.dumps([f"http://localhost:{port}", f"http://127.0.0.1:{port}"])
        )
        # Every function's loopback URL: the cron function's health job checks their readiness.
        base_env.setdefault("CODITECT_FUNCTION_URLS", json.dumps({p.name: p.url for p in present}))
        for p in present:
            self.children[p.name] = Child(
                p.name,
                p.argv(),
                env=p.env(s, broker_url, base_env),
                cwd=s.root,
                log_path=s.logs_dir / f"{p.name}.log",
                url=p.url + "/",
                report=self.say,
                grace=s.grace,
                on_change=self.write_state,
            )
        await asyncio.gather(*(child.start() for child in self.children.values()))
        ready = await asyncio.gather(*(c.wait_ready(s.ready_timeout) for c in self.children.values()))
        for child, ok in zip(self.children.values(), ready, strict=True):
            if not ok:
                self.say(f"WARNING: {child.name} did not become ready; see {child.log_path}")
            child.supervise(s.ready_timeout)
        table = RouteTable(p.spec for p in self.planned)
        upstreams = {p.name: (p.url if p.present else None) for p in self.planned}
        self.gateway = Served(Gateway(table, upstreams), gateway_sock)
        await self.gateway.start()
        if any(event_types.CRON in p.spec.events for p in present):
            self.scheduler = Scheduler(SCHEDULES, broker_url)
            self.scheduler.start()
        self.write_state()
        self.print_table(broker_url, time.monotonic() - started)

    def gateway_url(self) -> str:
        assert self.gateway is not None
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"http://{host}:{self.gateway.port}"

    def print_table(self, broker_url: str, took: float) -> None:
        s = self.settings
        rows = [
            ("gateway", self.gateway_url(), "", "logs/gateway.log"),
            ("broker (K_SINK)", broker_url, "", "logs/broker.log"),
        ]
        for p in self.planned:
            child = self.children.get(p.name)
            if child is None:
                rows.append((p.name, "(skipped: no main.py)", p.spec.kind, ""))
            else:
                rows.append((p.name, p.url, f"{p.spec.kind} pid {child.pid}", f"logs/{p.name}.log"))
        jobs = f"{len(SCHEDULES)} cron jobs" if self.scheduler else "idle (no cron subscriber)"
        rows.append(("scheduler", jobs, "", "logs/scheduler.log"))
        lines = [f"Coditect local stack — data dir {s.data_dir}"]
        lines += [f"  {a:<18} {b:<32} {c:<18} {d}".rstrip() for a, b, c, d in rows]
        lines.append(f"Ready in {took:.1f}s: {self.gateway_url()}/api/v5/health — Ctrl-C stops everything.")
        print("\n".join(lines), file=self.out, flush=True)

    def write_state(self) -> None:
        s = self.settings
        state: dict[str, Any] = {
            "supervisor_pid": os.getpid(),
            "data_dir": str(s.data_dir),
            "gateway": self.gateway_url() if self.gateway and self.gateway.server.started else None,
            "broker": f"http://{LOOPBACK}:{self.broker_server.port}/" if self.broker_server else None,
            "dead_letter": str(s.dead_letter),
            "functions": {
                p.name: {
                    "kind": p.spec.kind,
                    "url": p.url if p.present else None,
                    "pid": self.children[p.name].pid if p.name in self.children else None,
                    "restarts": self.children[p.name].restarts if p.name in self.children else 0,
                    "log": str(s.logs_dir / f"{p.name}.log"),
                }
                for p in self.planned
            },
        }
        tmp = s.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, s.state_file)

    # -- stop --------------------------------------------------------------------------------
    async def stop(self) -> None:
        self.say("stopping")
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        await asyncio.gather(*(child.stop() for child in self.children.values()))
        if self.broker_server is not None:
            await self.broker_server.stop()
        await asyncio.to_thread(self.reap_workspaces)
        if self._owns_state_file():
            self.settings.state_file.unlink()
        self.say("stopped")

    def reap_workspaces(self) -> None:
        """Stop the LocalProvisioner's workspace processes: they are detached, so no signal reaches them."""
        state_dir = self.settings.workspaces_dir
        if not state_dir.is_dir() or not any(state_dir.glob("*.json")):
            return
        from coditect.workspaces.local import LocalProvisioner

        provisioner = LocalProvisioner(state_dir, stop_grace=self.settings.grace)
        for path in sorted(state_dir.glob("*.json")):
            self.say(f"stopping workspace process {path.stem}")
            provisioner.stop(path.stem)

    async def run(self) -> int:
        """Start, serve until SIGINT/SIGTERM (also one arriving mid-start), stop. Exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        starting = asyncio.ensure_future(self.start())
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        status = 0
        try:
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # raises why the start failed
                await stop_wait
            else:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        except (AlreadyRunning, PortInUse) as exc:
            self.say(f"ERROR: {exc}")
            status = 2
        finally:
            stop_wait.cancel()
            await self.stop()
        return status
