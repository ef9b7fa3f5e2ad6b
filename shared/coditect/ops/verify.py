"""The `verify` job: restore a backup into scratch space and prove it is whole.

Steps, each failing with a reason that names what is wrong:

1. every file's SHA-256 and size equal the manifest's (a flipped byte fails here, naming the file);
2. restore into a scratch SQLite store in a temporary directory: decompress the snapshot (zstd
   frame checksum too), or load the logical export's pairs (each file's trailer checked);
3. `PRAGMA integrity_check` of the scratch store is "ok";
4. the key count and every per-range checksum equal the manifest's (names the first bad range);
5. record-level checks (`coditect.ops.checks`): every record decodes, indexes ↔ records both
   ways, file chunks referenced by file versions exist. For a logical backup (consistent per
   transaction only) their findings are warnings; for a snapshot they fail.

Outcome recorded under `records.backup_key(id)`: `verified_at` (and `verify_outcome`) or
`verify_failed_at` with `verify_reason`. The scratch directory is always removed.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from coditect.ops import archive, records
from coditect.ops.archive import BackupInfo
from coditect.ops.checks import RecordChecker
from coditect.ops.logical import CorruptExport, read_pairs
from coditect.ops.runner import BACKUP_AGE, JobContext, Result, Status, rfc3339
from coditect.store.sqlite import SCHEMA


class VerifyFailed(Exception):
    """The backup is not restorable as recorded; the message says why."""


@dataclass
class Report:
    backup_id: str
    ok: bool
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    key_count: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "ok": self.ok, "reason": self.reason, "warnings": self.warnings,
                "checked": self.checked, "key_count": self.key_count, "seconds": self.seconds}  # fmt: skip


def check_files(info: BackupInfo) -> None:
    assert info.manifest is not None
    for expected in info.manifest.files:
        path = info.path / expected.name
        if not path.is_file():
            raise VerifyFailed(f"{expected.name}: missing from the backup directory")
        got = archive.file_sum(path)
        if got.bytes != expected.bytes or got.sha256 != expected.sha256:
            raise VerifyFailed(
                f"{expected.name}: SHA-256/size differ from the manifest (file damaged): "
                f"{got.bytes} bytes sha256 {got.sha256[:16]}… != {expected.bytes} bytes {expected.sha256[:16]}…"
            )


def materialize(info: BackupInfo, target: Path) -> None:
    """Restore `info` into a new SQLite store file `target` (no checks beyond the formats')."""
    assert info.manifest is not None
    if info.manifest.kind == "sqlite":
        with (info.path / info.manifest.files[0].name).open("rb") as src, target.open("wb") as out:
            try:
                zstandard.ZstdDecompressor().copy_stream(src, out)
            except zstandard.ZstdError as exc:
                raise VerifyFailed(f"{info.manifest.files[0].name}: cannot decompress ({exc})") from exc
        return
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        conn.execute("BEGIN")
        for f in info.manifest.files:
            try:
                conn.executemany("INSERT INTO kv VALUES (?, ?)", read_pairs(info.path / f.name))
            except (CorruptExport, sqlite3.IntegrityError) as exc:
                raise VerifyFailed(f"{f.name}: {exc}") from exc
        conn.execute("COMMIT")
    finally:
        conn.close()


def verify_backup(info: BackupInfo, scratch_root: Path | None = None) -> Report:
    started = time.monotonic()
    report = Report(info.id, ok=False)
    if info.manifest is None:
        report.reason = "no readable manifest.json (partial or damaged backup)"
        return report
    manifest = info.manifest
    with tempfile.TemporaryDirectory(prefix=f"verify-{info.id}-", dir=scratch_root) as scratch:
        target = Path(scratch) / "store.db"
        try:
            check_files(info)
            materialize(info, target)
            conn = sqlite3.connect(target)
            try:
                integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
                if integrity != ["ok"]:
                    raise VerifyFailed(f"SQLite integrity_check: {'; '.join(integrity[:5])}")
                hasher = archive.checksum_pairs(archive.iter_sqlite_kv(conn), manifest.range_keys)
                report.key_count = hasher.count
                if hasher.count != manifest.key_count:
                    raise VerifyFailed(f"key count {hasher.count} != manifest's {manifest.key_count}")
                problems = archive.compare_ranges(manifest.ranges, hasher.ranges)
                if problems:
                    raise VerifyFailed("; ".join(problems))
                found = RecordChecker(conn).run()
            finally:
                conn.close()
        except (VerifyFailed, sqlite3.DatabaseError) as exc:
            report.reason = str(exc) if isinstance(exc, VerifyFailed) else f"SQLite: {exc}"
            report.seconds = round(time.monotonic() - started, 3)
            return report
    report.checked = dict(found.checked)
    if found.problem_count:
        summary = f"{found.problem_count} record problem(s): " + "; ".join(found.problems[:5])
        if manifest.kind == "sqlite":
            report.reason = summary
            report.seconds = round(time.monotonic() - started, 3)
            return report
        report.warnings.append(summary)
    report.ok = True
    report.seconds = round(time.monotonic() - started, 3)
    return report


def record_report(ctx_db: Any, report: Report, now: float) -> None:
    key = records.backup_key(report.backup_id)
    if report.ok:
        records.update(ctx_db, key, id=report.backup_id, verified_at=rfc3339(now), verified_unix=now,
                       verify_outcome="warn" if report.warnings else "ok", verify_reason="; ".join(report.warnings),
                       verify_seconds=report.seconds)  # fmt: skip
    else:
        records.update(ctx_db, key, id=report.backup_id, verified_at=None, verify_failed_at=rfc3339(now), verify_outcome="failed",
                       verify_reason=report.reason, verify_seconds=report.seconds)  # fmt: skip


def run(ctx: JobContext) -> Result:
    root = ctx.settings.resolved_backup_dir.resolve()
    try:
        info = archive.find(root, None)
    except LookupError as exc:
        return Result("warn", detail=str(exc))
    known = records.read(ctx.db, records.backup_key(info.id)) or {}
    if known.get("verified_at"):
        BACKUP_AGE.labels(state="verified").set(max(0.0, time.time() - info.created))
        return Result("ok", detail=f"newest backup {info.id} already verified at {known['verified_at']}")
    # scratch space on the backup volume: /tmp is a small emptyDir in the cron pod
    report = verify_backup(info, scratch_root=root)
    record_report(ctx.db, report, ctx.now)
    counts: dict[str, float] = {"keys": report.key_count, **{k: float(v) for k, v in report.checked.items()}}
    if not report.ok:
        ctx.alert({"job": "verify", "check": "backup_verify", "outcome": "fail",
                   "detail": f"backup {info.id}: {report.reason}"})  # fmt: skip
        return Result(
            "failed",
            counts,
            f"backup {info.id} FAILED verification: {report.reason}",
            {"verify": report.to_dict()},
        )
    BACKUP_AGE.labels(state="verified").set(max(0.0, time.time() - info.created))
    status: Status = "warn" if report.warnings else "ok"
    return Result(
        status, counts, f"backup {info.id} verified ({report.key_count} keys)", {"verify": report.to_dict()}
    )
