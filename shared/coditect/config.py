"""Typed configuration, read once at cold start from `CODITECT_*` environment variables.

Invalid values fail the process at start (pydantic raises), never at the first request; an
unknown `CODITECT_*` variable (a typo, a removed setting) is warned about at start. Secrets are
never values here: they are files (a mounted Kubernetes Secret) named by a path.

The variables are read by `_environment` below, not by pydantic-settings: importing that package
(and its cloud secret-source modules) cost every function's cold start more than everything else
in this library. The rules are pydantic-settings' for what we use: `CODITECT_<FIELD>` in any
case (or the field's `validation_alias`, e.g. `K_SINK`), a field of a list/tuple/dict type (or
optional one) given as JSON, arguments passed to `Settings(...)` win over the environment.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "CODITECT_"

log = logging.getLogger("coditect.config")
# `CODITECT_*` variables that programs other than the functions read: the dev stack
# (coditect.devstack.plan, supervisor) and the workspace program (coditect.workspaces.program).
OTHER_PROGRAMS_VARIABLES = frozenset(
    {
        "CODITECT_PORT",
        "CODITECT_HOST",
        "CODITECT_BROKER_PORT",
        "CODITECT_BROKER_ATTEMPTS",
        "CODITECT_BROKER_BACKOFF",
        "CODITECT_DEVSTACK_EXTRA",
        "CODITECT_DEVSTACK_GRACE",
        "CODITECT_WORKSPACE_ID",
        "CODITECT_SHELL",
        "CODITECT_LOGS_DIR",
        "CODITECT_CADDY",
        "CODITECT_FRONTDOOR_BODY_TIMEOUT",
        "CODITECT_FRONTDOOR_BODY_MIN_RATE",
        "CODITECT_REPLICAS",
    }
)


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_environment(type(self)), **values})

    # Where the embedded defaults keep their files (store, keys, backups, workspace state).
    data_dir: Path = Path(".coditect")
    # Store URL; empty means `sqlite://<data_dir>/store.db` (see coditect.store.open_store).
    store: str = ""
    # Disk the SQLite store keeps in reserve so deletes and GC still work on a full disk
    # (coditect.store.space; 0 = none).
    store_reserve_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Where published CloudEvents go: Knative's SinkBinding sets `K_SINK` (no CODITECT_ prefix) in
    # the functions that publish; the local stack sets it too. Empty: this process cannot publish.
    sink: str = Field(default="", validation_alias="K_SINK")
    # Directory of Ed25519 PEM files (coditect.identity.signing_keys); private keys only where signing happens.
    keys_dir: Path | None = None
    issuer: str = "https://coditect.local"
    audience: str = "coditect-api"
    access_token_ttl: int = Field(default=900, ge=60, le=900)
    # Browser origins allowed by CORS and by the relay's Origin check (exact match).
    cors_origins: tuple[str, ...] = ("http://localhost:8080", "http://127.0.0.1:8080")
    # Number of trusted reverse-proxy hops in X-Forwarded-For; 0 = use the socket peer only.
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    # When set, the client address is taken from this header only (one IP literal; absent or
    # invalid → the socket peer) and X-Forwarded-For is ignored. The platform's ingress (Envoy:
    # Istio, Kourier, Contour) and the local front door (Caddy) set `X-Envoy-External-Address`
    # from the downstream address and overwrite a client's copy (docs/frontdoor.md).
    client_ip_header: str = Field(default="", pattern=r"^([A-Za-z0-9-]{1,64})?$")
    max_json_body: int = 1024 * 1024
    # A request body must arrive at this many bytes/s after a grace period, else 408 and the
    # connection is closed (coditect.http.bodytime): slow clients cannot hold a function's threads.
    body_min_rate: int = Field(default=1024, ge=1)
    body_grace_seconds: float = Field(default=10.0, gt=0)
    max_file_size: int = 100 * 1024 * 1024
    # -- files (coditect.files) -------------------------------------------------------------
    # Per-tenant quota on logical file bytes (every stored version in every session); 507 above.
    files_quota_bytes: int = Field(default=10 * 1024**3, ge=0)
    # Version retention: the newest N versions of a file are kept, and older ones are dropped
    # once older than this many days (0 = no age limit); the current version is always kept.
    files_keep_versions: int = Field(default=20, ge=1, le=10_000)
    files_keep_days: float = Field(default=30.0, ge=0)
    # GC: an upload silent for this long is abandoned (its staged chunks are released), and an
    # unreferenced chunk/manifest is deleted only this long after its last reference went (so a
    # GET streaming an old version that was just dropped can finish).
    files_upload_stale_seconds: int = Field(default=600, ge=0)
    files_gc_grace_seconds: int = Field(default=300, ge=0)
    log_level: str = "INFO"

    # -- workspaces (coditect.workspaces) --------------------------------------------------------
    # Provisioner backend: "local" (processes on loopback, the embedded default) or "kubernetes".
    workspace_backend: Literal["local", "kubernetes"] = "local"
    # LocalProvisioner state directory; None means <data_dir>/workspaces.
    workspace_state_dir: Path | None = None
    # Local backend argv override (JSON list, "{port}" substituted); None = the bundled program.
    workspace_command: tuple[str, ...] | None = None
    # Sync agent (coditect.sync): argv prefix override (JSON list; None = `python -m coditect.sync`),
    # the API URL it talks to (None = public_base_url), the flush bound it gets on stop, and the
    # image of the Kubernetes sidecar. See docs/workspaces.md.
    workspace_sync_command: tuple[str, ...] | None = None
    workspace_sync_api_url: str | None = None
    workspace_sync_flush_timeout: float = Field(default=20.0, gt=0, le=300)
    workspace_sync_image: str = "registry.coditect.internal/coditect/workspace-sync:5.0.0"
    # Set by the devstack supervisor to its own pid: each local workspace's ward tears the
    # workspace down when that process dies (even by kill -9). None: no watch.
    stack_pid: int | None = None
    # Seconds a start may take before it fails as start_timeout (provisioner side).
    workspace_start_timeout: float = Field(default=120.0, gt=0, le=900)
    # Kubernetes backend: namespace of workspace pods, the pinned image, the relay's namespace.
    workspace_namespace: str = "coditect-workspaces"
    workspace_image: str = "registry.coditect.internal/coditect/theia:1.74.1"  # built from images/theia
    workspace_relay_namespace: str = "coditect"
    # Active (requested/provisioning/ready) workspaces allowed per user and per tenant (409 above).
    workspace_max_per_user: int = Field(default=2, ge=1, le=100)
    workspace_max_per_tenant: int = Field(default=50, ge=1, le=10000)
    # Allocations allowed per user per minute (429 rate_limited above).
    workspace_allocate_per_minute: int = Field(default=10, ge=1, le=1000)
    # Idle stop (no relayed activity for this long) and the hard maximum lifetime, in seconds.
    workspace_idle_timeout: int = Field(default=1800, ge=60)
    workspace_max_lifetime: int = Field(default=12 * 3600, ge=300)
    # A workspace still requested/provisioning this long after creation fails as start_timeout.
    workspace_start_deadline: int = Field(default=900, ge=60)
    # Relay tickets live at most this long (the contract caps them at 60 s).
    workspace_ticket_ttl: int = Field(default=60, ge=5, le=60)
    # Relay cookie sessions live at most this long (and never beyond their login session).
    workspace_cookie_ttl: int = Field(default=12 * 3600, ge=60)
    # Activity is written at most once per this many seconds per workspace (idle-stop input).
    workspace_activity_interval: int = Field(default=60, ge=1, le=600)
    # Public origin clients reach the relay on (tickets' websocket_url/http_url); locally the front door.
    public_base_url: str = "http://localhost:8080"

    # -- relay (coditect.relay) ------------------------------------------------------------------
    # Largest WebSocket message relayed either way; a bigger one closes the socket with 1009.
    relay_max_message_size: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Open relayed WebSockets per user in one relay process; the next is refused with 429.
    relay_max_connections_per_user: int = Field(default=20, ge=1, le=10_000)
    # Seconds without a message either way after which a relayed WebSocket is closed (1001).
    relay_idle_timeout: float = Field(default=3600.0, ge=1)
    # Keepalive pings to the workspace (the client side is pinged by uvicorn --ws-ping-interval).
    relay_ping_interval: float = Field(default=20.0, gt=0)
    # How often live grants are re-checked (revocation must close sockets within 5 s).
    relay_revocation_interval: float = Field(default=1.0, gt=0, le=2)
    # Relay cookie `Secure` attribute; None = Secure exactly when public_base_url is https.
    relay_cookie_secure: bool | None = None
    # Upstream HTTP timeouts: connect, and between bytes of a response (long polls stay open).
    relay_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    relay_read_timeout: float = Field(default=300.0, gt=0)
    # Messages buffered per direction on the workspace leg before the relay stops reading.
    relay_max_queue: int = Field(default=4, ge=1, le=64)
    # On SIGTERM the relay fails readiness at once, keeps serving this long (the endpoint leaves
    # the Service and the ingress), then closes every relayed socket with 1012 and exits.
    relay_drain_seconds: float = Field(default=10.0, ge=0, le=600)

    # -- identity (coditect.identity; docs/identity.md) -------------------------------------
    # Argon2id cost; the defaults are OWASP's minimum (m = 19 MiB, t = 2, p = 1). Lower values are
    # refused at cold start unless argon2_weak_params_for_tests is set (the test fixture does).
    argon2_memory_kib: int = Field(default=19456, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    argon2_weak_params_for_tests: bool = False
    # Refresh-token (login session) lifetimes: absolute since login, idle since the last refresh.
    refresh_absolute_ttl: int = Field(default=30 * 86400, ge=3600)
    refresh_idle_ttl: int = Field(default=7 * 86400, ge=600)
    # A just-spent refresh token presented again within this many seconds gets the same successor.
    refresh_grace_seconds: int = Field(default=10, ge=0, le=60)
    invite_ttl: int = Field(default=7 * 86400, ge=300)
    # Verifiers reload the public keys on an unknown kid at most this often, and always after max age.
    key_reload_interval: int = Field(default=30, ge=1)
    key_ring_max_age: int = Field(default=300, ge=10)
    # Login throttling per account (normalised email) and per client IP: attempts per window
    # before an exponential backoff (base doubling up to the cap) starts. See docs/identity.md.
    login_account_limit: int = Field(default=5, ge=1)
    login_account_window: int = Field(default=3600, ge=1)
    login_account_backoff: int = Field(default=30, ge=1)
    login_account_backoff_cap: int = Field(default=900, ge=1)
    login_ip_limit: int = Field(default=50, ge=1)
    login_ip_window: int = Field(default=900, ge=1)
    login_ip_backoff: int = Field(default=60, ge=1)
    login_ip_backoff_cap: int = Field(default=3600, ge=1)
    # Request-rate limits per client IP for /register and /refresh (429 with Retry-After).
    register_ip_limit: int = Field(default=20, ge=1)
    register_ip_window: int = Field(default=600, ge=1)
    refresh_ip_limit: int = Field(default=120, ge=1)
    refresh_ip_window: int = Field(default=60, ge=1)

    # -- ops (coditect.ops; docs/runbook.md) --------------------------------------------------
    # Where backups go; None means <data_dir>/backups. Production: a mounted volume, not /tmp.
    backup_dir: Path | None = None
    # Retention: the newest `keep_last` backups, the newest of each of the last `keep_daily` UTC
    # days and of each of the last `keep_weekly` ISO weeks (and always the newest verified one).
    backup_keep_last: int = Field(default=3, ge=1)
    backup_keep_daily: int = Field(default=7, ge=0)
    backup_keep_weekly: int = Field(default=4, ge=0)
    # Policy for the health job: the newest verified backup may be this old (seconds) before it
    # warns; twice this old fails. Backups run hourly and verify 30 minutes later.
    backup_max_age: int = Field(default=3 * 3600, ge=60)
    # SQLite backup API: pages copied per step and seconds slept between steps (yields to writers).
    backup_step_pages: int = Field(default=1024, ge=1)
    backup_step_sleep: float = Field(default=0.002, ge=0)
    # Keys per checksum range in a backup manifest.
    backup_range_keys: int = Field(default=10_000, ge=100)
    # fdbbackup binary and the blob-store URL of the operator's FoundationDBBackup (for status).
    fdbbackup_command: str = "fdbbackup"
    # Seconds one run of a bounded cron job may work before it stops and resumes next run
    # (reconcile, gc, the FoundationDB logical export); backup/verify of SQLite are one piece.
    ops_job_budget: float = Field(default=20.0, gt=0, le=600)
    # Base URL of every function by name (JSON object), for the health job's readiness checks: one
    # URL (its Service) or a list (the local stack: one per process). Empty: "unknown".
    function_urls: dict[str, str | Annotated[list[str], Field(min_length=1)]] = Field(default_factory=dict)
    # GC retention: rate-limit records idle this long, spent refresh families ended this long ago,
    # and CloudEvent dedupe marks older than this (must exceed the Broker's redelivery horizon).
    throttle_retention: int = Field(default=86400, ge=3600)
    refresh_family_retention: int = Field(default=30 * 86400, ge=3600)
    dedupe_retention: int = Field(default=2 * 86400, ge=3600)
    # Health thresholds: store probe latency (ms) that warns, SQLite WAL size (bytes) that warns.
    health_probe_warn_ms: float = Field(default=500.0, gt=0)
    health_wal_warn_bytes: int = Field(default=512 * 1024 * 1024, ge=0)

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite://{(self.data_dir / 'store.db').resolve()}"

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or (self.data_dir / "keys")

    @property
    def token_pepper_file(self) -> Path:
        # The server pepper keying refresh-token digests (coditect.identity.tokens.load_pepper).
        return self.resolved_keys_dir / "token-pepper.secret"

    @property
    def resolved_backup_dir(self) -> Path:
        return self.backup_dir or (self.data_dir / "backups")


def unknown_variables(names: Iterable[str]) -> list[str]:
    """The `CODITECT_*` names among `names` that neither Settings nor another program reads."""
    read = (
        f"CODITECT_{name.upper()}" for name, f in Settings.model_fields.items() if f.validation_alias is None
    )
    known = {*read, *OTHER_PROGRAMS_VARIABLES}
    return sorted(n for n in names if n.upper().startswith("CODITECT_") and n.upper() not in known)


def _is_json(annotation: Any) -> bool:
    """Whether a field's values come as JSON (pydantic-settings' "complex" fields)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_json(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return origin in (tuple, list, dict, set, frozenset) or annotation in (tuple, list, dict, set, frozenset)


def _environment(cls: type[BaseModel]) -> dict[str, Any]:
    found = {
        k[len(ENV_PREFIX) :].lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)
    }
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        raw = os.environ.get(alias) if isinstance(alias, str) else found.get(name)
        if raw is None:
            continue
        if _is_json(field.annotation):
            if not raw.strip():
                continue  # empty: the default
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be JSON: {exc}") from None
        else:
            values[name] = raw
    return values


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached: read once, at cold start). Tests call
    `get_settings.cache_clear()`."""
    settings = Settings()
    for name in unknown_variables(os.environ):
        log.warning("unknown setting %s is ignored (the settings are coditect.config.Settings)", name)
    return settings
