"""Restore refusals and --force, per-tenant export/import, the gc job's identity sweeps, and the
cron function receiving both cron event shapes (deduped on (source, id))."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coditect import keyspace
from coditect.identity import repository as identity
from coditect.ops import records
from coditect.ops.backup import take_backup
from coditect.ops.maintenance import sweep_refresh_families, sweep_throttles
from coditect.ops.transfer import ImportConflict, export_tenant, import_tenant
from coditect.store import Database
from tests.functional.ops.conftest import Populated

ROOT = Path(__file__).resolve().parents[3]


def ops_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coditect.ops", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, check=False)  # fmt: skip


def keyset(db: Database, begin: bytes, end: bytes) -> dict[bytes, bytes]:
    return dict(db.transact(lambda tr: tr.get_range(begin, end)))


@pytest.mark.slow
def test_restore_refuses_live_targets_and_force_keeps_the_old_store(
    populated: Populated, tmp_path: Path
) -> None:
    info = take_backup(populated.db(), populated.settings, time.time())
    assert info is not None
    fresh = tmp_path / "fresh"
    done = ops_cli("restore", "--backup", info.id, "--to", str(fresh))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["store"] == str(fresh / "store.db")
    again = ops_cli("restore", "--backup", info.id, "--to", str(fresh))
    assert again.returncode == 2 and "holds data" in again.stderr and "--force" in again.stderr
    forced = ops_cli("restore", "--backup", info.id, "--to", str(fresh), "--force")
    assert forced.returncode == 0, forced.stderr
    assert list(fresh.glob("store.db.before-restore-*")), "the replaced store is kept beside it"
    (fresh / "devstack.json").write_text(json.dumps({"supervisor_pid": os.getpid()}))
    running = ops_cli("restore", "--backup", info.id, "--to", str(fresh), "--force")
    assert running.returncode == 2 and "stop it first" in running.stderr
    missing = ops_cli("restore", "--backup", "20990101T000000Z-0000", "--to", str(tmp_path / "x"))
    assert missing.returncode == 1 and "no backup" in missing.stderr
    listed = ops_cli("list", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [info.id]


def test_restore_refuses_a_store_format_newer_than_its_own(
    populated: Populated, tmp_path: Path, store_at: Callable[[Path], Database]
) -> None:
    import dataclasses

    from coditect.ops import archive
    from coditect.ops.restore import RestoreRefused, restore_to_dir

    info = take_backup(populated.db(), populated.settings, time.time())
    assert info is not None and info.manifest is not None
    assert info.manifest.schema_version == archive.KV_SCHEMA_VERSION
    newer = info.manifest.model_copy(update={"schema_version": archive.KV_SCHEMA_VERSION + 1})
    with pytest.raises(RestoreRefused, match="newer than this release"):
        restore_to_dir(dataclasses.replace(info, manifest=newer), tmp_path / "newer")
    assert not (tmp_path / "newer").exists()
    older = info.manifest.model_copy(update={"schema_version": 1})  # the counter in `meta`: read as a floor
    restored = restore_to_dir(dataclasses.replace(info, manifest=older), tmp_path / "older")
    assert store_at(restored).transact(lambda tr: tr.get_range(b"", b"\xff", limit=1))


def test_a_tenant_moves_to_another_store_and_conflicts_are_refused(
    populated: Populated, tmp_path: Path, store_at: Callable[[Path], Database]
) -> None:
    source = populated.db()
    tid = populated.alice.tenant_id
    out = tmp_path / "alice.cdxl"
    stats = export_tenant(source, tid, out)
    assert stats.global_keys >= 2  # the email index entry and refresh-token digests at least
    target = store_at(tmp_path / "other" / "store.db")
    imported = import_tenant(target, out)
    assert imported.keys == stats.keys
    space = keyspace.tenant(tid)
    assert keyset(target, *space.range()) == keyset(source, *space.range())
    email = keyspace.EMAIL_INDEX.range()
    assert keyset(target, *email) == {
        k: v for k, v in keyset(source, *email).items() if tid in v.decode("latin-1")
    }
    assert not keyset(target, *keyspace.tenant(populated.bob.tenant_id).range())  # nobody else came along
    with pytest.raises(ImportConflict, match="already has data"):
        import_tenant(target, out)
    # a store where alice's email belongs to someone else refuses the import
    third = store_at(tmp_path / "third" / "store.db")
    taken = next(k for k, v in keyset(source, *email).items() if tid in v.decode("latin-1"))
    third.transact(lambda tr: tr.set(taken, b"someone else"))
    with pytest.raises(ImportConflict, match="email address"):
        import_tenant(third, out)
    assert not keyset(third, *space.range())
    with pytest.raises(LookupError):
        export_tenant(source, "00000000-0000-4000-8000-00000000abcd", tmp_path / "none.cdxl")


def test_import_advances_the_commit_counter_past_imported_messages(
    populated: Populated, tmp_path: Path, store_at: Callable[[Path], Database]
) -> None:
    import sqlite3

    import fdb.tuple as fdbtuple

    source = populated.db()
    space = keyspace.session(populated.alice.tenant_id, populated.sessions["main"]).sub("msg")
    stamps = [p for key, _ in source.transact(lambda tr: tr.get_range(*space.range()))
              for p in fdbtuple.unpack(key) if isinstance(p, fdbtuple.Versionstamp)]  # fmt: skip
    newest = max(int.from_bytes(s.tr_version[:8], "big") for s in stamps)
    out = tmp_path / "alice.cdxl"
    export_tenant(source, populated.alice.tenant_id, out)
    target_dir = tmp_path / "target"
    import_tenant(store_at(target_dir / "store.db"), out)
    conn = sqlite3.connect(target_dir / "store.db")
    (counter,) = conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
    conn.close()
    # Without the advance the counter would count the import's own versionstamped commits: none.
    assert newest <= counter


def test_gc_sweeps_idle_throttles_and_spent_refresh_families(populated: Populated) -> None:
    db = populated.db()
    s = populated.settings
    now = time.time()
    fresh_key, idle_key = (
        keyspace.THROTTLE.key("login-ip", "fresh"),
        keyspace.THROTTLE.key("login-ip", "idle"),
    )
    import struct

    state = struct.Struct(">dIId")
    db.transact(lambda tr: (tr.set(fresh_key, state.pack(now - 60, 3, 0, 0.0)),
                            tr.set(idle_key, state.pack(now - 3 * 86400, 3, 1, now - 3 * 86400 + 30))))  # fmt: skip
    cleared, complete = sweep_throttles(db, now=now, retention=86400, deadline=time.monotonic() + 30)
    assert (cleared, complete) == (1, True)
    assert db.transact(lambda tr: (tr.get(fresh_key) is not None, tr.get(idle_key)))[:2] == (True, None)

    tid, uid = populated.alice.tenant_id, populated.alice.user_id
    sid = populated.alice.session_id
    digests = lambda: [kv for kv in keyset(db, *keyspace.TOKEN_DIGESTS.range("refresh")).items()]  # noqa: E731
    mine = [k for k, v in digests() if sid in v.decode("latin-1")]
    assert mine
    kw = {
        "retention": s.refresh_family_retention,
        "absolute_ttl": s.refresh_absolute_ttl,
        "idle_ttl": s.refresh_idle_ttl,
    }
    # still live: nothing happens
    assert sweep_refresh_families(db, now=now, deadline=time.monotonic() + 30, **kw) == (0, True)
    # revoked 31 days ago (retention 30 days): the family goes, with its index entry and digests
    revoked_at = now - 31 * 86400

    def revoke(tr: Any) -> None:
        session = identity.get_session(tr, tid, sid)
        identity.put_session(tr, session.model_copy(update={"revoked_at": revoked_at}), session)

    db.transact(revoke)
    cleared, complete = sweep_refresh_families(db, now=now, deadline=time.monotonic() + 30, **kw)
    assert complete and cleared == len(mine)
    assert db.transact(lambda tr: identity.get_session(tr, tid, sid)) is None
    assert db.transact(lambda tr: identity.user_session_ids(tr, tid, uid)) == []
    assert not [k for k, v in digests() if sid in v.decode("latin-1")]
    bob_sid = populated.bob.session_id
    assert [k for k, v in digests() if bob_sid in v.decode("latin-1")], "bob's live family stays"


def test_a_sweep_out_of_time_resumes_from_its_cursor(populated: Populated) -> None:
    db = populated.db()
    now = time.time()
    import struct

    stale = struct.Struct(">dIId").pack(now - 9 * 86400, 1, 0, 0.0)
    db.transact(lambda tr: [tr.set(keyspace.THROTTLE.key("p", f"{i:04}"), stale) for i in range(1200)])
    cleared, complete = sweep_throttles(db, now=now, retention=86400, deadline=time.monotonic() - 1)
    assert (cleared, complete) == (0, False)
    assert records.read(db, records.progress_key("gc.throttle"))["after"]  # type: ignore[index]
    cleared, complete = sweep_throttles(db, now=now, retention=86400, deadline=time.monotonic() + 30)
    assert (cleared, complete) == (1200, True)
    assert records.read(db, records.progress_key("gc.throttle")) is None


def cron_client() -> Any:
    from functions_framework import _function_registry, create_app

    _function_registry.REGISTRY_MAP.pop("handle", None)
    return create_app("handle", str(ROOT / "functions" / "cron" / "main.py"), "cloudevent").test_client()


def post(client: Any, attributes: dict[str, str], data: dict[str, str]) -> Any:
    headers, body = to_binary(CloudEvent(attributes, data))
    return client.post("/", headers=headers, data=body)


def test_cron_function_runs_jobs_from_both_event_shapes_once_per_event(populated: Populated) -> None:
    client = cron_client()
    scheduler = {"type": "com.coditect.ops.cron", "source": "/coditect/devstack/scheduler/gc", "id": "e-1"}
    assert post(client, scheduler, {"job": "gc"}).status_code == 200
    db = populated.db()
    first = records.read(db, records.job_key("gc"))
    assert first is not None and first["outcome"] in ("ok", "incomplete")
    assert first["trigger"] == {"source": scheduler["source"], "id": "e-1"}
    assert post(client, scheduler, {"job": "gc"}).status_code == 200  # redelivered: deduped
    assert records.read(db, records.job_key("gc"))["started_at"] == first["started_at"]  # type: ignore[index]
    ping = {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/coditect/pingsources/cron-health",
            "id": "p-1", "coditecttype": "com.coditect.ops.cron"}  # fmt: skip
    assert post(client, ping, {"job": "health"}).status_code == 200
    health = records.read(db, records.job_key("health"))
    assert health is not None and health["trigger"]["id"] == "p-1"
    bogus = {**scheduler, "id": "e-2"}
    assert post(client, bogus, {"job": "nope"}).status_code == 200  # acked: a redelivery cannot fix it
