"""The provisioner interface: start, stop, inspect and list workspace workloads.

Modelled on JupyterHub's ``Spawner``: one abstract base class, a local implementation shipped
beside the production one (`coditect.workspaces.local.LocalProvisioner` and
`coditect.workspaces.k8s.backend.KubernetesProvisioner`).

The interface is synchronous on purpose: it runs inside a functions-framework CloudEvent function,
which acks an event by returning and asks Knative for redelivery by raising.

Errors a caller must tell apart::

    ProvisionFailed            permanent: record `status_reason = exc.reason`, ack the event
    TransientProvisionError    retry later: let it propagate so Knative redelivers

Anything else escaping a provisioner is a bug and should be treated like a transient error.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

FailureReason = Literal[
    "image_pull_failed",
    "unschedulable",
    "quota_exceeded",
    "start_timeout",
    "crashed",
    "invalid_spec",
    "sandbox_unavailable",
    "forbidden",  # refused by admission (Pod Security, a policy webhook) or RBAC: fixing needs an operator
]
FAILURE_REASONS: frozenset[str] = frozenset(get_args(FailureReason))


class ProvisionFailed(Exception):
    """The workspace cannot start and retrying the same request will not help.

    `reason` is one of `FAILURE_REASONS` (the workspace record's ``status_reason``); `message` is a
    human explanation safe to show the workspace's owner (no credentials, no internals).
    """

    def __init__(self, reason: FailureReason, message: str) -> None:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        self.reason: FailureReason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class TransientProvisionError(Exception):
    """The backend could not be reached or answered with a retryable error; try again later."""


def _check_uuid(name: str, value: str) -> None:
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ProvisionFailed("invalid_spec", f"{name} is not a UUID") from None
    # Backends derive DNS names and file names from these ids, so only the canonical lowercase
    # form is accepted: two spellings of one id must never name two workloads.
    if canonical != value:
        raise ProvisionFailed("invalid_spec", f"{name} must be a lowercase canonical UUID")


@dataclass(frozen=True)
class WorkspaceSpec:
    """What to start. Constructing an invalid spec raises ``ProvisionFailed("invalid_spec")``.

    `image` and `command` override the backend's template when given. `command` is an argv in
    which ``{port}`` is replaced by the port the workload must listen on (chosen by the local
    backend, fixed by the template on Kubernetes). The local backend ignores `image`.

    `credential` (the workspace credential, `coditect.workspaces.credentials`) and `api_url` are
    what the sync agent needs; without them no agent runs (bare workloads in backend tests).
    The credential is never in a repr, a log line or an argv.
    """

    workspace_id: str
    tenant_id: str
    user_id: str
    session_id: str
    image: str | None = None
    command: tuple[str, ...] | None = None
    credential: str | None = field(default=None, repr=False)
    api_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("workspace_id", "tenant_id", "user_id", "session_id"):
            _check_uuid(name, getattr(self, name))
        if self.command is not None and (
            not isinstance(self.command, tuple) or not self.command or not all(self.command)
        ):
            raise ProvisionFailed("invalid_spec", "command must be a non-empty tuple of non-empty strings")
        if self.image is not None and (not self.image or any(c.isspace() for c in self.image)):
            raise ProvisionFailed("invalid_spec", "image must be a non-empty reference without spaces")


@dataclass(frozen=True)
class Endpoint:
    """Where the relay connects to reach a workspace. Server state only: never from a client."""

    host: str
    port: int


@dataclass(frozen=True)
class WorkloadState:
    """What a backend observes about one workload right now.

    `reason` explains why it is not ready: a `FailureReason` when a failure is detectable,
    ``"starting"`` while it comes up, ``"exited"`` when the workload is gone but traces remain,
    ``"terminating"`` while it is being deleted, ``"not_found"`` when nothing exists.
    `endpoint` is set only when `ready`.
    """

    running: bool
    ready: bool
    endpoint: Endpoint | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StopOutcome:
    """What a stop observed about the sync agent's flush (None from `stop`: nothing to say).

    `flushed` False means the agent did not confirm its flush in time (status_reason
    ``sync_flush_timeout``); `detail` is the agent's last words (its pending paths), for logs.
    """

    flushed: bool = True
    detail: str = ""


NOT_FOUND = WorkloadState(running=False, ready=False, endpoint=None, reason="not_found")


class Provisioner(abc.ABC):
    """Base class of workspace backends. Subclasses override the four abstract methods.

    - `start(spec) -> Endpoint`: create the workload and block until it is ready. Idempotent: when
      the workload already exists, adopt it (wait for it if still starting) and return its
      endpoint; never start a second one. Raise `ProvisionFailed` as soon as a failure is
      detectable (do not sit out the timeout), ``ProvisionFailed("start_timeout")`` after
      `start_timeout` seconds, `TransientProvisionError` when the backend itself is unavailable.
      A failed start leaves nothing behind (no orphans).
    - `stop(workspace_id) -> StopOutcome | None`: remove the workload and everything created for
      it, after the sync agent's flush (bounded). Idempotent: stopping something missing is not
      an error.
    - `status(workspace_id) -> WorkloadState`: observe without changing anything; a missing
      workload is `NOT_FOUND`.
    - `list_workloads() -> dict[str, WorkloadState]`: every workload this backend manages that
      exists (including failed or exited ones not yet stopped), keyed by workspace id, so the
      reconciler can stop those without a record.

    `wait_until_ready` is the shared readiness loop with fast failure.
    """

    def __init__(self, *, start_timeout: float = 300.0, poll_interval: float = 0.5) -> None:
        if start_timeout <= 0 or poll_interval <= 0:
            raise ValueError("start_timeout and poll_interval must be positive")
        self.start_timeout = start_timeout
        self.poll_interval = poll_interval

    @abc.abstractmethod
    def start(self, spec: WorkspaceSpec) -> Endpoint:
        """Start (or adopt) the workload for `spec` and return its endpoint once ready."""

    @abc.abstractmethod
    def stop(self, workspace_id: str) -> StopOutcome | None:
        """Remove the workload and everything created for it; missing is fine."""

    @abc.abstractmethod
    def status(self, workspace_id: str) -> WorkloadState:
        """Observe one workload."""

    @abc.abstractmethod
    def list_workloads(self) -> dict[str, WorkloadState]:
        """Every workload this backend manages, keyed by workspace id."""

    def wait_until_ready(
        self, probe: Callable[[], Endpoint | None], *, timeout: float | None = None, what: str = "workspace"
    ) -> Endpoint:
        """Call `probe` until it returns an endpoint; it raises `ProvisionFailed` to fail fast.

        The interval backs off from a quick first check (most local starts take well under a
        second) up to `poll_interval`. Raises ``ProvisionFailed("start_timeout")`` when `timeout`
        (default `start_timeout`) elapses; the caller cleans up.
        """
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        interval = min(0.05, self.poll_interval)
        while True:
            endpoint = probe()
            if endpoint is not None:
                return endpoint
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProvisionFailed("start_timeout", f"{what} was not ready within {limit:g} s")
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, self.poll_interval)
