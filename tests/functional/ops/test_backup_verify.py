"""Backups of a store holding every kind of data, verified by restoring them into scratch space;
damaged backups (a flipped byte, a broken index, a truncated export) fail with a clear reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import zstandard

from coditect import keyspace
from coditect.ops import archive, records
from coditect.ops.archive import BackupInfo
from coditect.ops.backup import SNAPSHOT, take_backup
from coditect.ops.runner import run_job
from coditect.ops.verify import verify_backup
from tests.functional.ops.conftest import Populated
from tests.helpers import check_envelope

AREAS = ("tenants", "users", "email_index", "auth_sessions", "auth_sessions_by_user", "sessions",
         "s_by_owner", "conversations", "conv_ix", "messages", "file_entries", "file_versions",
         "file_manifests", "file_chunks")  # fmt: skip


def backup(p: Populated, **kwargs: Any) -> BackupInfo:
    info = take_backup(p.db(), p.settings, 1_900_000_000.0, **kwargs)
    assert info is not None and info.manifest is not None
    return info


def rewrite_manifest_sums(info: BackupInfo) -> BackupInfo:
    """Pretend the damage happened before the file checksums were taken (e.g. a bug in the
    snapshot): recompute them, so only the deeper checks can notice."""
    assert info.manifest is not None
    files = [
        archive.file_sum(info.path / f.name).model_copy(update={"name": f.name}) for f in info.manifest.files
    ]
    manifest = info.manifest.model_copy(update={"files": files})
    archive.write_manifest(info.path, manifest)
    return archive.find(info.path.parent, info.id)


def test_backup_and_verify_jobs_check_every_area_and_record_verified_at(populated: Populated) -> None:
    alerts: list[dict[str, Any]] = []
    db = populated.db()
    taken = run_job("backup", db, alert=alerts.append)
    assert taken["outcome"] == "ok", taken
    backup_id = taken["backup_id"]
    checked = run_job("verify", db, alert=alerts.append)
    assert checked["outcome"] == "ok", checked
    counts = checked["verify"]["checked"]
    missing = [area for area in AREAS if not counts.get(area)]
    assert not missing, counts
    assert counts["messages"] == 5 and counts["users"] == 2 and counts["tenants"] == 2
    recorded = records.read(db, records.backup_key(backup_id))
    assert recorded and recorded["verified_at"] and recorded["verify_outcome"] == "ok"
    assert alerts == []
    # the newest backup is verified: a second run says so instead of verifying again
    again = run_job("verify", db, alert=alerts.append)
    assert again["outcome"] == "ok" and "already verified" in again["detail"]
    info = archive.find(populated.settings.resolved_backup_dir, backup_id)
    assert info.manifest is not None and info.manifest.kind == "sqlite"
    assert [f.name for f in info.manifest.files] == [SNAPSHOT]
    assert info.manifest.key_count == sum(r.count for r in info.manifest.ranges) > 0
    assert not list(info.path.glob(".snapshot*")), "the uncompressed scratch copy is removed"


def test_a_flipped_byte_in_the_backup_file_fails_naming_the_file(populated: Populated) -> None:
    info = backup(populated)
    target = info.path / SNAPSHOT
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    report = verify_backup(info)
    assert not report.ok
    assert SNAPSHOT in report.reason and "SHA-256" in report.reason and "damaged" in report.reason
    # and the verify job records the failure and alerts
    alerts: list[dict[str, Any]] = []
    db = populated.db()
    result = run_job("verify", db, alert=alerts.append)
    assert result["outcome"] == "failed" and SNAPSHOT in result["detail"]
    assert [a["check"] for a in alerts] == ["backup_verify"]
    recorded = records.read(db, records.backup_key(info.id))
    assert recorded and recorded["verify_outcome"] == "failed" and not recorded.get("verified_at")
    assert SNAPSHOT in recorded["verify_reason"]


def test_a_flipped_byte_inside_a_value_fails_on_its_checksum_range(
    populated: Populated, tmp_path: Path
) -> None:
    info = backup(populated)
    raw = tmp_path / "store.db"
    with (info.path / SNAPSHOT).open("rb") as src, raw.open("wb") as out:
        zstandard.ZstdDecompressor().copy_stream(src, out)
    conn = sqlite3.connect(raw)
    key, value = conn.execute(
        "SELECT key, value FROM kv WHERE length(value) > 8 ORDER BY key LIMIT 1 OFFSET 7"
    ).fetchone()
    flipped = bytearray(value)
    flipped[-1] ^= 0x01
    conn.execute("UPDATE kv SET value = ? WHERE key = ?", (bytes(flipped), key))
    conn.commit()
    conn.close()
    with raw.open("rb") as src, (info.path / SNAPSHOT).open("wb") as out:
        zstandard.ZstdCompressor().copy_stream(src, out)
    report = verify_backup(rewrite_manifest_sums(info))
    assert not report.ok
    assert "checksum range 0" in report.reason and "differs from the manifest" in report.reason


def test_a_missing_index_entry_fails_the_record_checks(populated: Populated) -> None:
    db = populated.db()
    email_key = db.transact(
        lambda tr: next(
            keyspace.EMAIL_INDEX.unpack(key)[0] for key, _ in tr.get_range(*keyspace.EMAIL_INDEX.range())
        )
    )
    db.transact(lambda tr: tr.clear(keyspace.EMAIL_INDEX.key(email_key)))
    report = verify_backup(backup(populated))
    assert not report.ok
    assert "record problem" in report.reason and "user without its email index entry" in report.reason


def test_a_dangling_session_index_entry_fails_the_record_checks(populated: Populated) -> None:
    db = populated.db()
    t = keyspace.tenant(populated.alice.tenant_id)
    ghost = "00000000-0000-4000-8000-000000000001"
    db.transact(
        lambda tr: tr.set(
            t.sub(keyspace.SESSIONS_BY_OWNER).key(populated.alice.user_id, 1, ghost, "rec"), b""
        )
    )
    report = verify_backup(backup(populated))
    assert not report.ok and "session index entry without a live session" in report.reason


def test_logical_backup_verifies_and_a_truncated_export_fails(populated: Populated) -> None:
    info = backup(populated, logical=True)
    assert info.manifest is not None and info.manifest.kind == "logical"
    assert sorted(info.manifest.tenants) == sorted([populated.alice.tenant_id, populated.bob.tenant_id])
    report = verify_backup(info)
    assert report.ok, report.reason
    assert report.checked["messages"] == 5
    part = info.path / "tenants" / f"{populated.alice.tenant_id}.cdxl"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    damaged = verify_backup(info)
    assert not damaged.ok and part.name in damaged.reason
    truncated = verify_backup(rewrite_manifest_sums(info))
    assert not truncated.ok and part.name in truncated.reason and "truncated" in truncated.reason, (
        truncated.reason
    )


def test_verify_without_any_backup_warns(populated: Populated) -> None:
    result = run_job("verify", populated.db(), alert=lambda a: None)
    assert result["outcome"] == "warn" and "no complete backup" in result["detail"]


def test_a_fork_whose_parent_was_deleted_verifies(populated: Populated) -> None:
    # The fork keeps parent_id in its record while the parent's purge cleared the by-parent entries
    # under it: a consistent store (the console's session screen makes exactly this), not a problem.
    c, h = populated.accounts.client("sessions"), populated.alice.headers
    parent = check_envelope(c.post("/api/v5/sessions", json={"name": "parent"}, headers=h), 201)["id"]
    check_envelope(c.post(f"/api/v5/sessions/{parent}/fork", json={}, headers=h), 201)
    assert c.delete(f"/api/v5/sessions/{parent}", headers=h).status_code == 204
    report = verify_backup(backup(populated))
    assert report.ok, report.reason
