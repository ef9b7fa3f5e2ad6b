"""What the local stack starts: settings from the environment, and one `Planned` per function.

Each function runs the way its Knative Service runs it: HTTP and CloudEvent functions under
functions-framework (gunicorn, one worker, `THREADS` = the spec's concurrency =
containerConcurrency), the ASGI relay under uvicorn, each with the env Knative would give it
(`PORT`, `K_SERVICE`, `K_SINK`) plus the local data directory. An HTTP function runs as
`CODITECT_REPLICAS` such processes (default 2), each on its own port, so that the front door can
send a request to the other while one restarts (docs/frontdoor.md, "Retries").
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from coditect import registry
from coditect.config import Settings
from coditect.registry.spec import FunctionSpec

LOOPBACK = "127.0.0.1"
CORS_DEFAULTS: tuple[str, ...] = Settings.model_fields["cors_origins"].default
DEFAULT_REPLICAS = 2  # processes per HTTP function (CODITECT_REPLICAS)


def repo_root() -> Path:
    """The checkout holding functions/: the working directory when it has one (nox runs there),
    else the checkout this (editable) package lives in."""
    cwd = Path.cwd()
    if (cwd / "functions").is_dir():
        return cwd
    return Path(__file__).resolve().parents[3]


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel's choice; a tiny race is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class StackSettings:
    """The devstack's own settings (`CODITECT_*`, see the README's settings table)."""

    root: Path
    data_dir: Path
    host: str = LOOPBACK  # the front door's bind address; everything else stays on loopback
    port: int = 8080
    broker_port: int = 0  # 0: a free port
    extra: Path | None = None  # a file declaring extra FUNCTIONS (tests)
    grace: float = 5.0  # seconds between SIGTERM and SIGKILL
    ready_timeout: float = 60.0
    # The front door's slow-client limit: a request body gets this many seconds plus one second
    # per `body_min_rate` bytes, else 408 (docs/frontdoor.md).
    body_timeout: float = 10.0
    body_min_rate: int = 32 * 1024
    logs: Path | None = None  # CODITECT_LOGS_DIR: logs on another volume than the store
    replicas: int = (
        DEFAULT_REPLICAS  # CODITECT_REPLICAS: processes per HTTP function (the relay and events: 1)
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackSettings:
        env = os.environ if env is None else env
        root = repo_root()
        extra = env.get("CODITECT_DEVSTACK_EXTRA")
        return cls(
            root=root,
            data_dir=Path(env.get("CODITECT_DATA_DIR") or ".coditect").resolve(),
            host=env.get("CODITECT_HOST") or LOOPBACK,
            port=int(env.get("CODITECT_PORT") or 8080),
            broker_port=int(env.get("CODITECT_BROKER_PORT") or 0),
            extra=Path(extra).resolve() if extra else None,
            grace=float(env.get("CODITECT_DEVSTACK_GRACE") or 5.0),
            body_timeout=float(env.get("CODITECT_FRONTDOOR_BODY_TIMEOUT") or 10.0),
            body_min_rate=int(env.get("CODITECT_FRONTDOOR_BODY_MIN_RATE") or 32 * 1024),
            logs=Path(env["CODITECT_LOGS_DIR"]).resolve() if env.get("CODITECT_LOGS_DIR") else None,
            replicas=_replicas(env.get("CODITECT_REPLICAS")),
        )

    @property
    def logs_dir(self) -> Path:
        """`CODITECT_LOGS_DIR`, else `<data dir>/logs`: a full log volume cannot stop the store."""
        return self.logs or self.data_dir / "logs"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def public_keys_dir(self) -> Path:
        """The public keys and the cursor MAC keys, no signing key: what functions that do not sign
        tokens mount in production."""
        return self.data_dir / "keys-public"

    @property
    def workspaces_dir(self) -> Path:
        """State of the LocalProvisioner's workspace processes (reaped at shutdown); the same
        default as `Settings.workspace_state_dir`."""
        given = os.environ.get("CODITECT_WORKSPACE_STATE_DIR")
        return Path(given).resolve() if given else self.data_dir / "workspaces"

    @property
    def dead_letter(self) -> Path:
        return self.data_dir / "dead-letter.jsonl"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "devstack.json"

    @property
    def frontdoor_config(self) -> Path:
        """The Caddy config rendered at start (real ports)."""
        return self.data_dir / "frontdoor.json"


def _replicas(given: str | None) -> int:
    if not given:
        return DEFAULT_REPLICAS
    try:
        count = int(given)
    except ValueError:
        count = 0
    if not 1 <= count <= 8:
        raise ValueError(f"CODITECT_REPLICAS must be a whole number from 1 to 8, not {given!r}")
    return count


@dataclass(frozen=True)
class Planned:
    """One function to run: its spec, its source file and the loopback port of each of its
    processes (`port` the first's; `more_ports` the other replicas')."""

    spec: FunctionSpec
    source: Path
    port: int
    more_ports: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.more_ports)

    @property
    def urls(self) -> list[str]:
        """Every process's URL (the front door balances over them)."""
        return [f"http://{LOOPBACK}:{port}" for port in self.ports]

    def process_name(self, replica: int) -> str:
        """`<name>` for the first process, `<name>.2`, `<name>.3`... for the others (their logs)."""
        return self.name if replica == 0 else f"{self.name}.{replica + 1}"

    @property
    def present(self) -> bool:
        return self.source.is_file()

    def argv(self, replica: int = 0) -> list[str]:
        port = str(self.ports[replica])
        if self.spec.kind == "asgi":
            # as in the container: uvicorn with the relay's settings and drain (coditect.relay.server)
            app = f"{self.source.stem}:{self.spec.target}"
            return [sys.executable, "-m", "coditect.relay", "--app", app, "--app-dir", str(self.source.parent),
                    "--host", LOOPBACK, "--port", port]  # fmt: skip
        return [sys.executable, "-m", "functions_framework", "--target", self.spec.target,
                "--source", str(self.source), "--signature-type", self.spec.kind,
                "--host", LOOPBACK, "--port", port]  # fmt: skip

    def env(
        self, settings: StackSettings, broker_url: str, base: Mapping[str, str], replica: int = 0
    ) -> dict[str, str]:
        env = dict(base)
        env.update(
            CODITECT_DATA_DIR=str(settings.data_dir),
            K_SINK=broker_url,
            K_SERVICE=self.name,
            K_CONFIGURATION=self.name,
            K_REVISION=f"{self.name}-local",
            PORT=str(self.ports[replica]),
            THREADS=str(self.spec.concurrency),
            WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        if "CODITECT_CORS_ORIGINS" not in base:
            # The console is served by the front door: its own origin must pass the Origin checks
            # (relay, cookie mode of the token endpoints) whatever port the stack runs on.
            hosts = dict.fromkeys((settings.host, LOOPBACK, "localhost"))
            gateway = [f"http://{host}:{settings.port}" for host in hosts]
            env["CODITECT_CORS_ORIGINS"] = json.dumps([*dict.fromkeys((*CORS_DEFAULTS, *gateway))])
        if "CODITECT_KEYS_DIR" not in base:
            keys = settings.keys_dir if self.spec.signs_tokens else settings.public_keys_dir
            env["CODITECT_KEYS_DIR"] = str(keys)
        env.update(dict(self.spec.env))
        return env


def load_extra(path: Path) -> list[tuple[FunctionSpec, Path]]:
    """Extra functions (tests): `path` defines FUNCTIONS; each one's source is <dir>/<name>/main.py."""
    module_spec = importlib.util.spec_from_file_location("coditect_devstack_extra", path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"cannot load extra functions from {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    specs: tuple[FunctionSpec, ...] = module.FUNCTIONS
    return [(spec, path.parent / spec.name / "main.py") for spec in specs]


def function_specs(settings: StackSettings) -> list[tuple[FunctionSpec, Path]]:
    """Every function of the registry (sources under <root>/functions/), then the extras."""
    found = [(spec, settings.root / spec.source) for spec in registry.FUNCTIONS]
    if settings.extra is not None:
        found += load_extra(settings.extra)
    names = [spec.name for spec, _ in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"functions declared twice: {', '.join(duplicates)}")
    return found


def plan(settings: StackSettings) -> list[Planned]:
    """One Planned per function, each process on its own free loopback port: `replicas` processes
    for an HTTP function, one for the relay (its per-user connection limit is per process) and
    for CloudEvent functions (the broker retries a delivery that finds one restarting)."""
    # The front door (and a fixed broker port) bind after the functions: a port the kernel offers
    # now may be theirs, so it is skipped, as is one offered twice.
    taken = {settings.port, settings.broker_port}
    planned = []
    for spec, source in function_specs(settings):
        count = settings.replicas if spec.kind == "http" else 1
        ports = [_unused_port(taken) for _ in range(count)]
        planned.append(Planned(spec, source, ports[0], tuple(ports[1:])))
    return planned


def _unused_port(taken: set[int]) -> int:
    port = free_port()
    while port in taken:
        port = free_port()
    taken.add(port)
    return port
