"""A small private stack for the sync agent's tests and benchmark: register, sessions, files and
files-ops as real functions-framework processes (started as the devstack starts them), behind the
devstack's own front door (Caddy, its config rendered from the registry), with its own data dir;
`counts()` reads the files functions' own request log.

    stack = SyncStack.start(tmp_path, env={"CODITECT_FILES_QUOTA_BYTES": "..."})
    user = stack.user()                       # a new account + a new session: .token, .sid
    agent = stack.agent(user, root)           # `python -m coditect.sync ...` as a subprocess
    agent.wait_ready(); agent.status(); agent.stop()
    stack.stop_gateway(); stack.start_gateway()   # the API down / back (same port)
    stack.stop()
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from coditect import registry
from coditect.devstack import frontdoor
from coditect.devstack.plan import Planned, StackSettings, free_port
from coditect.devstack.supervisor import Stack
from tests.e2e.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("register", "sessions", "files", "files-ops")
TEST_ENV = {
    "CODITECT_ARGON2_MEMORY_KIB": "8",
    "CODITECT_ARGON2_TIME_COST": "1",
    "CODITECT_ARGON2_WEAK_PARAMS_FOR_TESTS": "true",
    "CODITECT_REGISTER_IP_LIMIT": "100000",
}


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


@dataclass
class User:
    token: str
    sid: str
    stack: SyncStack

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, rel: str = "") -> str:
        base = f"/api/v5/sessions/{self.sid}/files"
        return base + ("/" + "/".join(quote(s, safe="") for s in rel.split("/")) if rel else "")

    def put(self, rel: str, data: bytes, **headers: str) -> httpx.Response:
        return self.stack.http.put(self.url(rel), content=data, headers={**self.headers, **headers})

    def get(self, rel: str) -> httpx.Response:
        return self.stack.http.get(self.url(rel), headers=self.headers)

    def read(self, rel: str) -> bytes | None:
        r = self.get(rel)
        return r.content if r.status_code == 200 else None

    def delete(self, rel: str, recursive: bool = False) -> httpx.Response:
        params = {"recursive": "true"} if recursive else {}
        return self.stack.http.delete(self.url(rel), headers=self.headers, params=params)

    def move(self, src: str, dst: str) -> httpx.Response:
        return self.stack.http.post(self.url() + ":move", json={"from": src, "to": dst}, headers=self.headers)

    def listing(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"recursive": "true", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            r = self.stack.http.get(self.url(), params=params, headers=self.headers)
            r.raise_for_status()
            data = r.json()["data"]
            out.update({i["path"]: i for i in data["items"]})
            cursor = data["next_cursor"]
            if not cursor:
                return out

    def versions(self, rel: str) -> list[dict[str, Any]]:
        r = self.stack.http.get(self.url() + ":versions", params={"path": rel}, headers=self.headers)
        r.raise_for_status()
        return list(r.json()["data"]["items"])


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    port: int
    root: Path
    state_file: Path
    log: Path
    argv: list[str] = field(default_factory=list)

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)
        except httpx.HTTPError:
            return None

    def status(self) -> dict[str, Any]:
        r = self.get("/status")
        assert r is not None and r.status_code == 200, self.output()
        return dict(r.json())

    def wait_ready(self, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.process.returncode}:\n{self.output()}")
            r = self.get("/healthz")
            return r is not None and r.status_code == 200

        wait_for(ready, timeout, "the agent's /healthz to answer 200")

    def wait_idle(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            return dict(
                wait_for(lambda: (s := self.status())["pending"] == 0 and s, timeout, "no pending paths")
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.status()}\n{self.output()[-4000:]}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


class SyncStack:
    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.settings = StackSettings(root=ROOT, data_dir=work / "data")
        with open(os.devnull, "w") as quiet:
            Stack(self.settings, out=quiet).prepare()
        self.env = {**os.environ, **TEST_ENV, **env}
        self.env.pop("CODITECT_STORE", None)
        self.env.pop("CODITECT_KEYS_DIR", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.upstreams: dict[str, str] = {}
        self.gateway: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.agents: list[Agent] = []

    @classmethod
    def start(cls, work: Path, env: dict[str, str] | None = None) -> SyncStack:
        stack = cls(work, env or {})
        try:
            for name in FUNCTIONS:
                stack.spawn(name)
            for name in FUNCTIONS:
                stack.wait_started(name)
            stack.start_gateway()
        except BaseException:
            stack.stop()
            raise
        return stack

    def spawn(self, name: str) -> None:
        """Start function `name` on a port free right now (as the devstack starts it)."""
        spec = registry.function(name)
        planned = Planned(spec, ROOT / spec.source, free_port())
        with (self.settings.logs_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                planned.argv(), env=planned.env(self.settings, "http://127.0.0.1:9/", self.env),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.upstreams[name] = planned.url

    def wait_started(self, name: str, attempts: int = 3) -> None:
        """Wait until `name` answers; a process that exits first (its port taken between the
        choice and the bind: the machine's other clients use the same ephemeral range) is started
        again on another port. What it printed is in the error if it never comes up."""
        for _ in range(attempts):
            process = self.procs[name]
            try:
                wait_for(partial(_exited_or_answers, process, self.upstreams[name]), 120, f"{name} to start")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}:\n{self.log(name)[-4000:]}") from None
            if process.poll() is None:
                return
            self.spawn(name)
        raise RuntimeError(f"{name} exited {attempts} times while starting:\n{self.log(name)[-4000:]}")

    def log(self, name: str) -> str:
        return (self.settings.logs_dir / f"{name}.log").read_text(errors="replace")

    def start_gateway(self) -> None:
        """The local stack's own front door (Caddy, config rendered from the registry) over these
        functions, on the stack's fixed port: stopped and started again, it is the API going down
        and coming back."""
        door = frontdoor.FrontDoor(listen=f"127.0.0.1:{self.port}", storage=self.settings.data_dir / "caddy")
        names = [registry.function(name) for name in FUNCTIONS]
        config = self.settings.data_dir / "sync-frontdoor.json"
        config.write_text(json.dumps(frontdoor.render(names, self.upstreams, door)))
        env = {**self.env, "HOME": str(door.storage), "XDG_DATA_HOME": str(door.storage)}
        env["XDG_CONFIG_HOME"] = str(door.storage)
        with (self.settings.logs_dir / "frontdoor.log").open("ab") as log:
            self.gateway = subprocess.Popen(
                [frontdoor.caddy_binary(), "run", "--config", str(config)],
                env=env, cwd=self.settings.data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: _answers(self.url + "/api/v5/health/none"), 60, "the front door to start")

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            _stop(self.gateway)
            self.gateway = None

    def counts(self) -> dict[str, int]:
        """Requests the files functions answered, by "<METHOD> files" (from their own request log:
        one JSON line per request, flushed as written)."""
        counted: dict[str, int] = {}
        for name in ("files", "files-ops"):
            for line in self.log(name).splitlines():
                if '"msg": "request"' in line and '"route": "files.' in line:
                    key = f"{json.loads(line)['method']} files"
                    counted[key] = counted.get(key, 0) + 1
        return counted

    def user(self) -> User:
        email = f"sync-{secrets.token_hex(6)}@example.test"
        r = self.http.post("/api/v5/auth/register",
                           json={"email": email, "password": f"t-{secrets.token_hex(8)}-quartz", "name": "Sync"})  # fmt: skip
        assert r.status_code == 201, r.text
        token = r.json()["data"]["tokens"]["access_token"]
        r = self.http.post(
            "/api/v5/sessions", json={"name": "ws"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 201, r.text
        return User(token, r.json()["data"]["id"], self)

    def agent(self, user: User, root: Path, *, state_file: Path | None = None, flush_timeout: float = 20,
              env: dict[str, str] | None = None) -> Agent:  # fmt: skip
        state_file = state_file or root.parent / f"{root.name}.state.json"
        cred = root.parent / f"{root.name}.credential"
        cred.write_text(user.token)
        cred.chmod(0o600)
        port = free_port()
        log = root.parent / f"{root.name}.agent.log"
        argv = [sys.executable, "-m", "coditect.sync", "--api-url", self.url, "--session-id", user.sid,
                "--workspace-id", "00000000-0000-4000-8000-000000000000", "--root", str(root),
                "--credential-file", str(cred), "--health-port", str(port), "--state-file", str(state_file),
                "--flush-timeout", str(flush_timeout)]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(argv, env={**self.env, **(env or {})}, cwd=ROOT, stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        agent = Agent(process, port, root, state_file, log, argv)
        self.agents.append(agent)
        return agent

    def stop(self) -> None:
        for agent in self.agents:
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait()
        self.stop_gateway()
        for process in self.procs.values():
            _stop(process)
        self.http.close()


def _exited_or_answers(process: subprocess.Popen[bytes], url: str) -> bool:
    return process.poll() is not None or _answers(url + "/healthz")


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True
