"""FoundationDB-only reads for the ops jobs, kept out of the store adapter.

- The status document: a plain read of the special key `\\xff\\xff/status/json` through the
  store interface (`FDBTransaction.get` forwards it; no adapter change needed), assessed with
  `fdb_status.assess`.
- The operator's FoundationDBBackup: `fdbbackup status --json -C <cluster file>` (the binary comes
  with the foundationdb-clients package in the image), assessed with `fdb_status.assess_backup`.
  The cron job never starts or stops that backup: the operator owns it.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from coditect.config import Settings
from coditect.ops import fdb_status
from coditect.store import Database

STATUS_KEY = b"\xff\xff/status/json"


def is_fdb(db: Database) -> bool:
    return db.url.startswith("fdb:")


def status_document(db: Database) -> dict[str, Any]:
    raw = db.transact(lambda tr: tr.get(STATUS_KEY))
    if raw is None:
        raise RuntimeError("the cluster returned no status document")
    document: dict[str, Any] = json.loads(raw)
    return document


def health_report(db: Database) -> fdb_status.HealthReport:
    return fdb_status.assess(status_document(db))


def backup_report(db: Database, settings: Settings, *, now: float) -> dict[str, Any]:
    """`fdbbackup status --json` assessed; outcome "fail" with the reason when it cannot run."""
    cluster_file = getattr(db, "cluster_file", None)
    argv = [settings.fdbbackup_command, "status", "--json"] + (["-C", cluster_file] if cluster_file else [])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"outcome": "fail", "detail": f"cannot run {argv[0]}: {exc}"}
    if done.returncode != 0:
        return {
            "outcome": "fail",
            "detail": f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:300]}",
        }
    try:
        report = fdb_status.assess_backup(json.loads(done.stdout), now=now)
    except ValueError as exc:
        return {"outcome": "fail", "detail": f"unreadable fdbbackup status: {exc}"}
    out = report.to_dict()
    out["detail"] = "; ".join(f"{c.name}: {c.detail}" for c in report.problems) or "backup healthy"
    return out
