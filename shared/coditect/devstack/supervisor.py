"""The supervisor: brings the whole local stack up, keeps it up, and takes all of it down.

Order of start: data directory and signing keys → broker (functions need `K_SINK`) → every
function process (in parallel; `CODITECT_REPLICAS` processes per HTTP function, each supervised
on its own) → wait until each answers HTTP → the front door (Caddy, a child
process like the functions, its config rendered from the registry with their real ports) →
scheduler → the table.
Order of stop (Ctrl-C / SIGTERM): scheduler → local workspaces recorded in <data dir>/workspaces/
(in parallel; each sync agent flushes through the still-running front door and API, bounded) →
front door → functions (process groups, SIGTERM then SIGKILL after the grace) → broker (pending
deliveries are dead-lettered). Workspaces left by a stack killed with -9 are reaped at the next
start (and their wards already tear them down when this process dies: `CODITECT_STACK_PID`).

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
from coditect.devstack import frontdoor
from coditect.devstack.broker import Broker, Subscriber, subscriptions_of
from coditect.devstack.children import Child
from coditect.devstack.plan import LOOPBACK, Planned, StackSettings, plan
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
        self.children: dict[str, list[Child]] = {}  # function → its processes
        self.frontdoor: Child | None = None
        self.port = 0  # the front door's port, known once bound
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
        from coditect.identity.cursor_keys import ensure_cursor_key
        from coditect.identity.signing_keys import ensure_keys

        ensure_keys(s.keys_dir)
        ensure_cursor_key(s.keys_dir)
        # Non-signing functions mount only the public keys in production (plus the cursor keys:
        # every function that lists things MACs cursors); mirror that here.
        s.public_keys_dir.mkdir(mode=0o700, exist_ok=True)
        for path in s.keys_dir.iterdir():
            if path.suffix == ".pub" or path.name in ("active", "cursor-active"):
                shutil.copyfile(path, s.public_keys_dir / path.name)
            elif path.name.startswith("cursor-") and path.suffix == ".secret":
                shutil.copyfile(path, s.public_keys_dir / path.name)
                os.chmod(s.public_keys_dir / path.name, 0o600)
        log_to_file(s.logs_dir / "devstack.log", "coditect.devstack")
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
        # Fail before starting anything when the port is taken (Caddy binds it again at its start).
        probe = bind(s.host, s.port)
        self.port = port = probe.getsockname()[1]
        probe.close()
        caddy = frontdoor.caddy_binary()
        await self.broker_server.start()
        broker_url = f"http://{LOOPBACK}:{self.broker_server.port}/"
        base_env = dict(os.environ)
        # The front door sets this header to the socket peer (as the production ingress does);
        # a client's X-Forwarded-For is never believed.
        base_env.setdefault("CODITECT_CLIENT_IP_HEADER", frontdoor.CLIENT_IP_HEADER)
        # The browser sees one origin, the front door's: ticket URLs, CORS and the relay's Origin
        # check must name its real port, not the default 8080.
        base_env.setdefault("CODITECT_PUBLIC_BASE_URL", f"http://localhost:{port}")
        base_env.setdefault(
            "CODITECT_CORS_ORIGINS", json.dumps([f"http://localhost:{port}", f"http://127.0.0.1:{port}"])
        )
        # Every process's loopback URL: the cron function's health job checks each one's readiness
        # (one dead replica is a degraded function, which the front door hides from users).
        base_env.setdefault("CODITECT_FUNCTION_URLS", json.dumps({p.name: p.urls for p in present}))
        # Local workspaces watch this process: even a kill -9 of the stack takes them down.
        base_env["CODITECT_STACK_PID"] = str(os.getpid())
        # A previous stack killed with -9 may have left workspaces whose wards are still tearing
        # down, or state files: reap them before anything starts (they are not ours to adopt).
        await asyncio.to_thread(self.reap_workspaces)
        for p in present:
            self.children[p.name] = [
                Child(
                    p.process_name(i),
                    p.argv(i),
                    env=p.env(s, broker_url, base_env, i),
                    cwd=s.root,
                    log_path=s.logs_dir / f"{p.process_name(i)}.log",
                    url=url + "/",
                    report=self.say,
                    grace=s.grace,
                    on_change=self.write_state,
                )
                for i, url in enumerate(p.urls)
            ]
        processes = self.processes()
        await asyncio.gather(*(child.start() for child in processes))
        ready = await asyncio.gather(*(c.wait_ready(s.ready_timeout) for c in processes))
        for child, ok in zip(processes, ready, strict=True):
            if not ok:
                self.say(f"WARNING: {child.name} did not become ready; see {child.log_path}")
            child.supervise(s.ready_timeout)
        await self.start_frontdoor(caddy)
        if any(event_types.CRON in p.spec.events for p in present):
            self.scheduler = Scheduler(SCHEDULES, broker_url)
            self.scheduler.start()
        self.write_state()
        self.print_table(broker_url, time.monotonic() - started)

    def processes(self) -> list[Child]:
        """Every function process (all replicas), in registry order."""
        return [child for replicas in self.children.values() for child in replicas]

    async def start_frontdoor(self, caddy: str) -> None:
        """Render Caddy's config with the real upstream ports, start it, wait until it answers."""
        s = self.settings
        upstreams = {p.name: (p.urls if p.present else None) for p in self.planned}
        door = frontdoor.FrontDoor(
            listen=self.frontdoor_address(),
            storage=s.data_dir / "caddy",
            body_timeout=s.body_timeout,
            body_min_rate=s.body_min_rate,
        )
        config = frontdoor.render([p.spec for p in self.planned], upstreams, door)
        s.frontdoor_config.write_text(json.dumps(config, indent=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADDY")}
        # Caddy keeps its (unused) state under XDG dirs: inside the data dir, not $HOME.
        env.update(HOME=str(door.storage), XDG_DATA_HOME=str(door.storage), XDG_CONFIG_HOME=str(door.storage))
        self.frontdoor = Child(
            "frontdoor",
            [caddy, "run", "--config", str(s.frontdoor_config)],
            env=env,
            cwd=s.data_dir,
            log_path=s.logs_dir / "frontdoor.log",
            url=self.local_url() + "/",
            report=self.say,
            grace=s.grace,
            on_change=self.write_state,
        )
        await self.frontdoor.start()
        if not await self.frontdoor.wait_ready(s.ready_timeout):
            self.say(f"WARNING: the front door did not become ready; see {self.frontdoor.log_path}")
        self.frontdoor.supervise(s.ready_timeout)

    def frontdoor_address(self) -> str:
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"{host}:{self.port}"

    def frontdoor_url(self) -> str:
        """The front door's URL (the one address a user or browser talks to)."""
        return f"http://{self.frontdoor_address()}"

    def local_url(self) -> str:
        """Where this machine reaches the front door (loopback when it listens on every address)."""
        if self.settings.host in ("0.0.0.0", "::", ""):  # noqa: S104 (a comparison, not a bind)
            return f"http://{LOOPBACK}:{self.port}"
        return self.frontdoor_url()

    def print_table(self, broker_url: str, took: float) -> None:
        s = self.settings
        rows = [
            (
                "front door",
                self.frontdoor_url(),
                f"caddy pid {self.frontdoor.pid if self.frontdoor else '-'}",
                "logs/frontdoor.log",
            ),
            ("broker (K_SINK)", broker_url, "", "logs/broker.log"),
        ]
        for p in self.planned:
            replicas = self.children.get(p.name)
            if replicas is None:
                rows.append((p.name, "(skipped: no main.py)", p.spec.kind, ""))
            for child in replicas or []:
                rows.append((child.name, child.url.rstrip("/") if child.url else "",
                             f"{p.spec.kind} pid {child.pid}", f"logs/{child.name}.log"))  # fmt: skip
        jobs = f"{len(SCHEDULES)} cron jobs" if self.scheduler else "idle (no cron subscriber)"
        rows.append(("scheduler", jobs, "", "logs/scheduler.log"))
        lines = [f"Coditect local stack — data dir {s.data_dir}"]
        lines += [f"  {a:<18} {b:<32} {c:<18} {d}".rstrip() for a, b, c, d in rows]
        lines.append(f"Ready in {took:.1f}s: {self.frontdoor_url()}/api/v5/health — Ctrl-C stops everything.")
        print("\n".join(lines), file=self.out, flush=True)

    def write_state(self) -> None:
        s = self.settings
        state: dict[str, Any] = {
            "supervisor_pid": os.getpid(),
            "data_dir": str(s.data_dir),
            "gateway": self.frontdoor_url() if self.frontdoor else None,
            "frontdoor": {
                "url": self.frontdoor_url() if self.frontdoor else None,
                "pid": self.frontdoor.pid if self.frontdoor else None,
                "restarts": self.frontdoor.restarts if self.frontdoor else 0,
                "config": str(s.frontdoor_config),
                "log": str(s.logs_dir / "frontdoor.log"),
            },
            "broker": f"http://{LOOPBACK}:{self.broker_server.port}/" if self.broker_server else None,
            "dead_letter": str(s.dead_letter),
            # url/pid/restarts/log: the first process's; `replicas`: every process's.
            "functions": {
                p.name: {
                    "kind": p.spec.kind,
                    "url": p.url if p.present else None,
                    "pid": self.children[p.name][0].pid if p.name in self.children else None,
                    "restarts": self.children[p.name][0].restarts if p.name in self.children else 0,
                    "log": str(s.logs_dir / f"{p.name}.log"),
                    "replicas": [
                        {
                            "url": (c.url or "").rstrip("/"),
                            "pid": c.pid,
                            "restarts": c.restarts,
                            "log": str(c.log_path),
                        }
                        for c in self.children.get(p.name, [])
                    ],
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
        # Workspaces first, while the front door and the functions still answer: their sync
        # agents flush through the API before they exit.
        await asyncio.to_thread(self.reap_workspaces)
        if self.frontdoor is not None:
            await self.frontdoor.stop()
        await asyncio.gather(*(child.stop() for child in self.processes()))
        if self.broker_server is not None:
            await self.broker_server.stop()
        if self._owns_state_file():
            self.settings.state_file.unlink()
        self.say("stopped")

    def reap_workspaces(self) -> None:
        """Stop the LocalProvisioner's workspaces (ward, agent, program): they are detached, so no
        signal reaches them. In parallel: each may wait for its agent's bounded flush."""
        state_dir = self.settings.workspaces_dir
        if not state_dir.is_dir() or not any(state_dir.glob("*.json")):
            return
        from concurrent.futures import ThreadPoolExecutor

        from coditect.config import get_settings
        from coditect.workspaces.local import LocalProvisioner

        flush = get_settings().workspace_sync_flush_timeout  # what the wards were given
        provisioner = LocalProvisioner(state_dir, stop_grace=self.settings.grace, flush_timeout=flush)
        ids = [path.stem for path in sorted(state_dir.glob("*.json"))]
        for workspace_id in ids:
            self.say(f"stopping workspace {workspace_id}")
        with ThreadPoolExecutor(max_workers=min(16, len(ids))) as pool:
            list(pool.map(provisioner.stop, ids))

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
        except (AlreadyRunning, PortInUse, frontdoor.CaddyMissing) as exc:
            self.say(f"ERROR: {exc}")
            status = 2
        finally:
            stop_wait.cancel()
            await self.stop()
        return status
