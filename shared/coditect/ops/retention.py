"""Which backups to keep: the newest few, one per day, one per week (grandfather-father-son).

Pure (no I/O, time passed in), so the rule is tested exactly:

- keep the newest `keep_last` complete backups;
- keep the newest complete backup of each of the `keep_daily` most recent UTC days that have one;
- keep the newest complete backup of each of the `keep_weekly` most recent ISO weeks that have one;
- always keep `protect` (the newest verified backup: never delete the last known-good restore);
- delete every other complete backup, and every partial directory (no manifest) older than
  `partial_grace` seconds (a younger one may be a logical export still resuming).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from coditect.ops.archive import PARTIAL_GRACE, BackupInfo


def plan_retention(
    backups: Sequence[BackupInfo],
    *,
    now: float,
    keep_last: int,
    keep_daily: int,
    keep_weekly: int,
    protect: str | None = None,
    partial_grace: float = PARTIAL_GRACE,
) -> list[BackupInfo]:
    """The backups to delete, oldest first."""
    complete = sorted((b for b in backups if b.complete), key=lambda b: b.id, reverse=True)
    keep = {b.id for b in complete[:keep_last]}
    days: dict[str, str] = {}
    weeks: dict[tuple[int, int], str] = {}
    for b in complete:  # newest first: the first one seen per day/week is that period's newest
        when = datetime.fromtimestamp(b.created, UTC)
        days.setdefault(when.strftime("%Y-%m-%d"), b.id)
        iso = when.isocalendar()
        weeks.setdefault((iso.year, iso.week), b.id)
    keep.update(list(days.values())[:keep_daily])
    keep.update(list(weeks.values())[:keep_weekly])
    if protect:
        keep.add(protect)
    doomed = [b for b in complete if b.id not in keep]
    doomed += [b for b in backups if not b.complete and now - b.created > partial_grace]
    return sorted(doomed, key=lambda b: b.id)
