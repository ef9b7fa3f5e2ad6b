"""The sync report: what `/status` answers and what goes to `PUT /api/v5/workspaces/{id}/sync`.

    {"state": "hydrating"|"syncing"|"flushing"|"stopped"|"flush_timeout",
     "last_push_at": RFC3339|null, "last_pull_at": RFC3339|null,
     "pending": int, "pending_paths": [≤ 50], "conflicts": [{"path", "kept_as", "at"} ≤ 50],
     "conflict_count": int, "skipped": [{"path", "reason"} ≤ 100]}

Conflicts are also a log line and the Prometheus counter `coditect_sync_conflicts_total`
(served on the health port's `/metrics`).
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("coditect.sync")

MAX_PENDING_LISTED = 50
MAX_CONFLICTS_LISTED = 50
MAX_SKIPPED_LISTED = 100

# `kept_as` of the two conflicts where one side deleted (the other content is the head).
DELETED_IN_STORE = "nothing lost: deleted in the store, the workspace's content was written back"
DELETED_HERE = "nothing lost: deleted in the workspace, the store's newer content came back"

METRICS = CollectorRegistry()
CONFLICTS = Counter(
    "coditect_sync_conflicts", "Paths changed on both sides since the last sync", registry=METRICS
)
PUSHES = Counter("coditect_sync_pushes", "Local changes written to the store", ["op"], registry=METRICS)
PULLS = Counter("coditect_sync_pulls", "Store changes applied to the directory", ["op"], registry=METRICS)
RETRIES = Counter("coditect_sync_retries", "Calls retried after the API was unreachable", registry=METRICS)
PENDING = Gauge("coditect_sync_pending", "Local changes not yet in the store", registry=METRICS)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Report:
    def __init__(self) -> None:
        self.state = "hydrating"
        self.last_push_at: str | None = None
        self.last_pull_at: str | None = None
        self.pending: list[str] = []
        self.conflicts: deque[dict[str, str]] = deque(maxlen=MAX_CONFLICTS_LISTED)
        self.conflict_count = 0
        self.skipped: dict[str, str] = {}

    def pushed(self, op: str) -> None:
        PUSHES.labels(op).inc()
        self.last_push_at = now_text()

    def pulled(self, op: str) -> None:
        PULLS.labels(op).inc()
        self.last_pull_at = now_text()

    def conflict(self, rel: str, kept_as: str) -> None:
        """Both sides changed `rel`; `kept_as` says where the content that lost the head is."""
        self.conflicts.append({"path": rel, "kept_as": kept_as, "at": now_text()})
        self.conflict_count += 1
        CONFLICTS.inc()
        log.warning(
            "sync conflict on %s: both sides changed it; the other content is kept as %s", rel, kept_as
        )

    def skip(self, rel: str, reason: str) -> None:
        if self.skipped.get(rel) != reason:
            log.warning("not synced: %s (%s)", rel, reason)
        self.skipped[rel] = reason

    def unskip(self, rel: str) -> None:
        self.skipped.pop(rel, None)

    def set_pending(self, paths: list[str]) -> None:
        self.pending = paths
        PENDING.set(len(paths))

    def as_json(self) -> dict[str, Any]:
        skipped = sorted(self.skipped.items())[:MAX_SKIPPED_LISTED]
        return {
            "state": self.state,
            "last_push_at": self.last_push_at,
            "last_pull_at": self.last_pull_at,
            "pending": len(self.pending),
            "pending_paths": sorted(self.pending)[:MAX_PENDING_LISTED],
            "conflicts": list(self.conflicts),
            "conflict_count": self.conflict_count,
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
        }
