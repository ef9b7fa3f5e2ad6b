"""Retention deletes exactly the expected backups (time stamps injected through the ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from coditect.ops.archive import BackupInfo, Manifest, id_time
from coditect.ops.retention import plan_retention

NOW = datetime(2025, 3, 19, 12, 0, tzinfo=UTC)  # a Wednesday


def info(when: datetime, *, complete: bool = True, n: int = 0) -> BackupInfo:
    backup_id = when.strftime("%Y%m%dT%H%M%SZ") + f"-{n:04x}"
    manifest = Manifest(id=backup_id, kind="sqlite", created_at=when, source="sqlite:///x", raw_bytes=0,
                        key_count=0, range_keys=100, ranges=[], files=[]) if complete else None  # fmt: skip
    return BackupInfo(backup_id, Path("/nowhere") / backup_id, manifest, id_time(backup_id))


def hourly(hours: int) -> list[BackupInfo]:
    return [info(NOW - timedelta(hours=h, minutes=43)) for h in range(hours)]


def plan(backups: list[BackupInfo], **kw: object) -> list[str]:
    args = {"now": NOW.timestamp(), "keep_last": 3, "keep_daily": 7, "keep_weekly": 4, **kw}
    return [b.id for b in plan_retention(backups, **args)]  # type: ignore[arg-type]


def test_hourly_backups_over_40_days_keep_last_daily_and_weekly_exactly() -> None:
    backups = hourly(40 * 24)
    kept = {b.id for b in backups} - set(plan(backups))
    newest_first = sorted(backups, key=lambda b: b.id, reverse=True)
    expected = {b.id for b in newest_first[:3]}
    by_day: dict[str, str] = {}
    by_week: dict[tuple[int, int], str] = {}
    for b in newest_first:
        when = datetime.fromtimestamp(b.created, UTC)
        by_day.setdefault(when.date().isoformat(), b.id)
        by_week.setdefault(when.isocalendar()[:2], b.id)
    expected |= set(list(by_day.values())[:7]) | set(list(by_week.values())[:4])
    assert kept == expected
    # 3 newest (all today) + 6 more days + up to 4 weeks whose newest is not already a daily one
    assert 10 <= len(kept) <= 13


def test_small_example_by_hand() -> None:
    a = info(datetime(2025, 3, 19, 11, 17, tzinfo=UTC))  # Wed, today, newest
    b = info(datetime(2025, 3, 19, 10, 17, tzinfo=UTC))  # Wed, today
    c = info(datetime(2025, 3, 18, 23, 17, tzinfo=UTC))  # Tue: newest of its day
    d = info(datetime(2025, 3, 18, 9, 17, tzinfo=UTC))  # Tue: older
    e = info(datetime(2025, 3, 16, 9, 17, tzinfo=UTC))  # Sun (previous ISO week): newest of that week
    f = info(datetime(2025, 3, 10, 9, 17, tzinfo=UTC))  # Mon, previous week too
    backups = [a, b, c, d, e, f]
    assert plan(backups, keep_last=1, keep_daily=2, keep_weekly=0) == [f.id, e.id, d.id, b.id]
    assert plan(backups, keep_last=1, keep_daily=2, keep_weekly=2) == [f.id, d.id, b.id]
    assert plan(backups, keep_last=1, keep_daily=0, keep_weekly=0) == [f.id, e.id, d.id, c.id, b.id]
    assert plan(backups, keep_last=6, keep_daily=0, keep_weekly=0) == []


def test_the_newest_verified_backup_is_never_deleted() -> None:
    backups = hourly(48)
    oldest = min(backups, key=lambda b: b.id)
    assert oldest.id in plan(backups, keep_last=1, keep_daily=1, keep_weekly=0)
    assert oldest.id not in plan(backups, keep_last=1, keep_daily=1, keep_weekly=0, protect=oldest.id)


def test_partial_backups_are_deleted_only_after_the_grace_period() -> None:
    old_partial = info(NOW - timedelta(hours=7), complete=False, n=1)
    young_partial = info(NOW - timedelta(minutes=30), complete=False, n=2)
    complete = info(NOW - timedelta(hours=1))
    assert plan([old_partial, young_partial, complete], keep_last=1) == [old_partial.id]
    # partial directories never count as "kept" backups
    assert plan([young_partial], keep_last=1) == []
