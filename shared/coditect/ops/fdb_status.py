"""FoundationDB status document -> pass/warn/fail health report.

Input is the `status json` document, the same one a client reads from the special key
``\\xff\\xff/status/json`` (schema: FoundationDB's ``mr-status-json-schemas.rst.inc``), or for
:func:`assess_backup` the output of ``fdbbackup status --json``. Everything here is pure: no I/O,
no ``fdb`` import, so the cron function's health job and the tests share it.

Severity policy (one place, so alerting reads the same everywhere):

- **fail** = the database cannot serve, or data is at risk now: not available, quorum of
  coordinators unreachable, recovery stuck before ``accepting_commits``, ``missing_data``,
  messages about an unreachable master/cluster controller or storage server errors, and any
  required field missing (a document we cannot read is never reported healthy).
- **warn** = serving, but degraded or working: data movement (``healthy_rebalancing``, ...),
  ``healing`` (a replica was lost and is being rebuilt: still available, but one more failure
  away from data loss, and FoundationDB heals it on its own, so it warns rather than pages),
  late recovery stages, zero fault tolerance, a ratekeeper limit other than the workload,
  large storage/log queues, other messages.
- **pass** = nothing to say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Outcome = Literal["pass", "warn", "fail"]
_RANK: Final[dict[str, int]] = {"pass": 0, "warn": 1, "fail": 2}

# Ratekeeper starts throttling near 1 GB of storage queue (TARGET_BYTES_PER_STORAGE_SERVER) and
# 2.4 GB of log queue; warn at about half, while there is still room to act before latency rises.
STORAGE_QUEUE_WARN_BYTES: Final = 500_000_000
LOG_QUEUE_WARN_BYTES: Final = 1_000_000_000

# str.split keeps these tables one line per group (and out of the formatter's way).
_DATA_STATE_WARN: Final = frozenset(
    "healthy_rebalancing healthy_repartitioning healthy_removing_server healthy_populating_region"
    " optimizing_team_collections initializing healing".split()
)
# Stages at or after which the database accepts commits again (recovery is finishing).
_RECOVERY_WARN: Final = frozenset("accepting_commits all_logs_recruited storage_recovered".split())
_SEVERE_MESSAGES: Final = frozenset(
    # cluster.messages: a role is unreachable, storage is erroring, or probes time out
    "unreachable_master_worker unreachable_cluster_controller_worker storage_servers_error"
    " unreadable_configuration database_availability_timeout commit_probe_timeout read_probe_timeout"
    " transaction_start_probe_timeout immediate_priority_transaction_start_probe_timeout primary_dc_missing"
    # client.messages: this client cannot reach the cluster at all
    " quorum_not_reachable no_cluster_controller unreachable_cluster_controller".split()
)
_BACKUP_OK_STATES: Final = frozenset({"Running", "RunningDifferentially", "Completed"})
_BACKUP_FAIL_STATES: Final = frozenset({"Aborted", "Aborting", "NeverRan", "Errored"})


@dataclass(frozen=True)
class Check:
    """One named check: its outcome and a human-readable reason."""

    name: str
    outcome: Outcome
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True)
class HealthReport:
    """The worst outcome of its checks, and the checks in a stable order."""

    outcome: Outcome
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, checks: Sequence[Check]) -> HealthReport:
        worst: Outcome = max((c.outcome for c in checks), key=_RANK.__getitem__, default="fail")
        return cls(outcome=worst, checks=tuple(checks))

    @property
    def problems(self) -> tuple[Check, ...]:
        """The checks that did not pass, worst first."""
        return tuple(sorted((c for c in self.checks if c.outcome != "pass"), key=lambda c: -_RANK[c.outcome]))

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "checks": [c.to_dict() for c in self.checks]}


class _Missing:
    """Sentinel for an absent field (``None`` can be a real JSON value)."""


_MISSING: Final = _Missing()


def _at(doc: Any, dotted: str) -> Any:
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _bool_check(name: str, doc: Mapping[str, Any], path: str, what: str) -> Check:
    value = _at(doc, path)
    if value is True:
        return Check(name, "pass", f"{what}: yes")
    if value is False:
        return Check(name, "fail", f"{what}: no ({path} is false)")
    return Check(name, "fail", f"{path} missing or not a boolean: cannot tell whether {what}")


def _document(doc: Mapping[str, Any]) -> Check:
    missing = [k for k in ("cluster", "client") if not isinstance(_at(doc, k), Mapping)]
    if missing:
        return Check(
            "document",
            "fail",
            f"status document lacks section(s) {', '.join(missing)}"
            " (empty, truncated or not a status json document)",
        )
    return Check("document", "pass", "cluster and client sections present")


def _coordinators(doc: Mapping[str, Any]) -> Check:
    quorum = _at(doc, "client.coordinators.quorum_reachable")
    if quorum is not True:
        return _bool_check(
            "coordinators_quorum",
            doc,
            "client.coordinators.quorum_reachable",
            "a quorum of coordinators is reachable",
        )
    coords = _at(doc, "client.coordinators.coordinators")
    down = (
        [
            str(c.get("address", "?"))
            for c in coords
            if isinstance(c, Mapping) and c.get("reachable") is not True
        ]
        if isinstance(coords, list)
        else []
    )
    if down:
        return Check(
            "coordinators_quorum",
            "warn",
            f"quorum reachable, but coordinator(s) unreachable: {', '.join(down)}",
        )
    return Check("coordinators_quorum", "pass", "all coordinators reachable")


def _data_state(doc: Mapping[str, Any]) -> Check:
    name = _at(doc, "cluster.data.state.name")
    if not isinstance(name, str):
        return Check("data_state", "fail", "cluster.data.state.name missing: data state unknown")
    replicas = _at(doc, "cluster.data.state.min_replicas_remaining")
    suffix = f" (min_replicas_remaining={replicas})" if isinstance(replicas, int) else ""
    if name == "healthy":
        return Check("data_state", "pass", "data healthy" + suffix)
    if name == "missing_data" or (isinstance(replicas, int) and replicas <= 0):
        return Check("data_state", "fail", f"data state {name}: some data has no live replica{suffix}")
    if name in _DATA_STATE_WARN:
        return Check("data_state", "warn", f"data state {name}{suffix}")
    return Check("data_state", "warn", f"unrecognised data state {name!r}{suffix}")


def _recovery(doc: Mapping[str, Any]) -> Check:
    name = _at(doc, "cluster.recovery_state.name")
    if not isinstance(name, str):
        return Check("recovery_state", "fail", "cluster.recovery_state.name missing: recovery unknown")
    description = _at(doc, "cluster.recovery_state.description")
    text = f"recovery state {name}" + (f": {description}" if isinstance(description, str) else "")
    if name == "fully_recovered":
        return Check("recovery_state", "pass", text)
    return Check("recovery_state", "warn" if name in _RECOVERY_WARN else "fail", text)


def _fault_tolerance(doc: Mapping[str, Any]) -> Check:
    data = _at(doc, "cluster.fault_tolerance.max_zone_failures_without_losing_data")
    avail = _at(doc, "cluster.fault_tolerance.max_zone_failures_without_losing_availability")
    if not isinstance(data, int) or not isinstance(avail, int):
        return Check("fault_tolerance", "warn", "cluster.fault_tolerance not reported")
    text = f"zone failures tolerated: {data} without losing data, {avail} without losing availability"
    if data < 0 or avail < 0:
        return Check("fault_tolerance", "fail", text)
    return Check("fault_tolerance", "warn" if min(data, avail) == 0 else "pass", text)


def _qos_limiter(doc: Mapping[str, Any]) -> Check:
    name = _at(doc, "cluster.qos.performance_limited_by.name")
    if not isinstance(name, str):
        return Check("qos_limiter", "warn", "cluster.qos.performance_limited_by not reported")
    if name == "workload":
        return Check("qos_limiter", "pass", "throughput limited only by the workload")
    description = _at(doc, "cluster.qos.performance_limited_by.description")
    return Check(
        "qos_limiter",
        "warn",
        f"ratekeeper limiting on {name}" + (f": {description}" if isinstance(description, str) else ""),
    )


def _qos_queues(doc: Mapping[str, Any]) -> Check:
    storage = _at(doc, "cluster.qos.worst_queue_bytes_storage_server")
    log = _at(doc, "cluster.qos.worst_queue_bytes_log_server")
    if not isinstance(storage, int | float) or not isinstance(log, int | float):
        return Check("qos_queues", "warn", "cluster.qos queue sizes not reported")
    text = f"worst queues: storage {int(storage)} B, log {int(log)} B"
    high = storage >= STORAGE_QUEUE_WARN_BYTES or log >= LOG_QUEUE_WARN_BYTES
    return Check("qos_queues", "warn" if high else "pass", text)


def _messages(doc: Mapping[str, Any]) -> Check:
    found: list[tuple[str, str]] = []
    for section in ("cluster", "client"):
        messages = _at(doc, f"{section}.messages")
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, Mapping):
                found.append((section, str(message.get("name", "unnamed"))))
    if not found:
        return Check("messages", "pass", "no cluster or client messages")
    severe = any(name in _SEVERE_MESSAGES for _, name in found)
    return Check(
        "messages",
        "fail" if severe else "warn",
        "messages: " + ", ".join(f"{section}:{name}" for section, name in found),
    )


_CHECKS: Final[tuple[Callable[[Mapping[str, Any]], Check], ...]] = (
    _document,
    lambda d: _bool_check("database_available", d, "cluster.database_available", "the database is available"),
    lambda d: _bool_check(
        "client_available", d, "client.database_status.available", "the database is available to this client"
    ),
    _coordinators,
    _recovery,
    _data_state,
    _fault_tolerance,
    _qos_limiter,
    _qos_queues,
    _messages,
)


def assess(status: Mapping[str, Any]) -> HealthReport:
    """Assess a ``status json`` document. Never raises on a malformed or partial document."""
    doc: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
    return HealthReport.of([check(doc) for check in _CHECKS])


def assess_backup(
    status: Mapping[str, Any], *, now: float | None = None, max_lag_seconds: float = 3600.0
) -> HealthReport:
    """Assess ``fdbbackup status --json``. With ``now`` (epoch seconds), also check log lag."""
    doc: Mapping[str, Any] = status if isinstance(status, Mapping) else {}
    state = _at(doc, "Status.Name")
    if not isinstance(state, str):
        return HealthReport.of([Check("backup_state", "fail", "Status.Name missing: not fdbbackup status")])
    bad = state in _BACKUP_FAIL_STATES
    ok = state in _BACKUP_OK_STATES
    paused = doc.get("BackupAgentsPaused") is True
    raw_errors = doc.get("Errors")
    errors: list[Any] = raw_errors if isinstance(raw_errors, list) else []
    restorable = doc.get("Restorable") is True
    checks = [
        Check("backup_state", "pass" if ok else "fail" if bad else "warn", f"backup {state}"),
        Check("backup_agents", "warn" if paused else "pass", f"backup agents paused: {paused}"),
        # Agents retry through transient errors (blob store hiccups); errors that stop progress
        # show up as a never-restorable or lagging backup, which the other checks catch.
        Check("backup_errors", "warn" if errors else "pass", f"{len(errors)} recent error(s) {errors[:3]}"),
        # Running but not yet restorable = the first snapshot has not finished: expected at first.
        Check(
            "backup_restorable",
            "pass" if restorable else "fail" if bad or state == "Completed" else "warn",
            "backup is restorable" if restorable else "backup is not (yet) restorable",
        ),
    ]
    log_end = _at(doc, "LatestLogEnd.EpochSeconds")
    if now is not None and ok and state != "Completed":
        if isinstance(log_end, int | float):
            lag = now - float(log_end)
            detail = f"mutation log {lag:.0f} s behind (limit {max_lag_seconds:.0f} s)"
            checks.append(Check("backup_lag", "warn" if lag > max_lag_seconds else "pass", detail))
        else:
            checks.append(Check("backup_lag", "warn", "LatestLogEnd not reported"))
    return HealthReport.of(checks)
