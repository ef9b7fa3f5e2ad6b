"""`python -m coditect.ops` — run jobs, back up, verify, restore, list, export, import.

    python -m coditect.ops run <health|backup|verify|reconcile|gc>
    python -m coditect.ops backup [--logical]
    python -m coditect.ops verify [--backup ID]
    python -m coditect.ops restore --backup ID (--to DATA_DIR | --into-store URL) [--force]
    python -m coditect.ops list [--json]
    python -m coditect.ops export --tenant ID --out FILE
    python -m coditect.ops import --file FILE

The store is the configured one (`CODITECT_STORE`, else `<CODITECT_DATA_DIR>/store.db`) unless
`--store URL` is given; backups live in `--backup-dir` or `CODITECT_BACKUP_DIR` or
`<data dir>/backups`. Exit status: 0 done, 1 the operation failed (reason on stderr), 2 refused
(bad arguments, a live restore target, an import conflict). docs/runbook.md has the procedures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from coditect.config import Settings, get_settings
from coditect.ops import archive, records
from coditect.ops.jobs import JOBS
from coditect.store import Database, open_store


def _settings(args: argparse.Namespace) -> Settings:
    s = get_settings()
    update: dict[str, Any] = {}
    if args.store:
        update["store"] = args.store
    if args.backup_dir:
        update["backup_dir"] = Path(args.backup_dir).resolve()
    return s.model_copy(update=update) if update else s


def _db(s: Settings) -> Database:
    return open_store(s.store_url)


def _existing_db(s: Settings) -> Database | None:
    """The configured store if it exists (listing must not create an empty one)."""
    url = s.store_url
    if url.startswith("sqlite://") and not Path(url.removeprefix("sqlite://").split("?")[0]).exists():
        return None
    return open_store(url)


def _print(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_run(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.runner import run_job

    record = run_job(args.job, _db(s), settings=s, trigger={"source": "cli"})
    _print(record)
    return 1 if record["outcome"] == "failed" else 0


def cmd_backup(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.backup import apply_retention, take_backup

    db = _db(s)
    info = take_backup(db, s, time.time(), logical=args.logical)
    if info is None:
        print("backup incomplete (logical export budget); run it again to resume", file=sys.stderr)
        return 1
    deleted = apply_retention(db, s, time.time())
    _print({"backup": archive.manifest_summary(info), "path": str(info.path), "retention_deleted": deleted})
    return 0


def cmd_verify(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.verify import record_report, verify_backup

    info = archive.find(s.resolved_backup_dir.resolve(), args.backup)
    report = verify_backup(info)
    db = _existing_db(s)
    if db is not None:
        record_report(db, report, time.time())
    _print(report.to_dict())
    if not report.ok:
        print(f"backup {info.id} FAILED verification: {report.reason}", file=sys.stderr)
        return 1
    return 0


def cmd_restore(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.restore import restore_to_dir, restore_to_store

    info = archive.find(s.resolved_backup_dir.resolve(), args.backup)
    if args.to:
        path = restore_to_dir(info, Path(args.to).resolve(), force=args.force)
        _print({"restored": info.id, "store": str(path), "next": f"CODITECT_DATA_DIR={path.parent}"})
    else:
        written = restore_to_store(info, open_store(args.into_store), force=args.force)
        _print({"restored": info.id, "store": args.into_store, "keys": written})
    return 0


def cmd_list(args: argparse.Namespace, s: Settings) -> int:
    now = time.time()
    db = _existing_db(s)
    known = {str(r.get("id")): r for r in records.backups(db)} if db is not None else {}
    rows = []
    for info in archive.list_backups(s.resolved_backup_dir.resolve()):
        r = known.get(info.id, {})
        if not info.complete:
            state = "partial"
        elif r.get("verified_at"):
            state = f"verified {r['verified_at']}"
        elif r.get("verify_outcome") == "failed":
            state = f"FAILED: {str(r.get('verify_reason', ''))[:60]}"
        else:
            state = "not verified"
        rows.append({"id": info.id, "kind": info.manifest.kind if info.manifest else "-",
                     "age_hours": round((now - info.created) / 3600, 2), "bytes": info.size,
                     "keys": info.manifest.key_count if info.manifest else None, "state": state})  # fmt: skip
    if args.json:
        _print(rows)
        return 0
    print(f"{'id':<22} {'kind':<8} {'age (h)':>8} {'bytes':>13} {'keys':>10}  state")
    for row in rows:
        print(f"{row['id']:<22} {row['kind']:<8} {row['age_hours']:>8} {row['bytes']:>13} "
              f"{row['keys'] if row['keys'] is not None else '-':>10}  {row['state']}")  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.transfer import export_tenant

    _print(export_tenant(_db(s), args.tenant, Path(args.out)).to_dict())
    return 0


def cmd_import(args: argparse.Namespace, s: Settings) -> int:
    from coditect.ops.transfer import import_tenant

    _print(import_tenant(_db(s), Path(args.file)).to_dict())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coditect.ops", description=__doc__.split("\n")[0])
    p.add_argument("--store", help="store URL (default: the configured store)")
    p.add_argument(
        "--backup-dir", help="backup directory (default: CODITECT_BACKUP_DIR or <data dir>/backups)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one cron job once against the store")
    run.add_argument("job", choices=sorted(JOBS))
    backup = sub.add_parser("backup", help="take a backup now (then apply retention)")
    backup.add_argument("--logical", action="store_true", help="logical export even on SQLite")
    verify = sub.add_parser("verify", help="restore a backup into scratch space and check it")
    verify.add_argument("--backup", help="backup id (default: the newest complete one)")
    restore = sub.add_parser("restore", help="restore a backup into a new data directory or store")
    restore.add_argument("--backup", required=True, help="backup id (see `list`)")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", help="data directory to restore store.db into")
    target.add_argument("--into-store", help="store URL to load a logical backup into")
    restore.add_argument("--force", action="store_true", help="overwrite a target that holds data")
    listing = sub.add_parser("list", help="backups with age, size and verification state")
    listing.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="write one tenant's data to a file")
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", required=True)
    imp = sub.add_parser("import", help="load a tenant export into the store")
    imp.add_argument("--file", required=True)
    return p


COMMANDS = {"run": cmd_run, "backup": cmd_backup, "verify": cmd_verify, "restore": cmd_restore,
            "list": cmd_list, "export": cmd_export, "import": cmd_import}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from coditect.ops.restore import RestoreRefused
    from coditect.ops.transfer import ImportConflict

    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, _settings(args))
    except (RestoreRefused, ImportConflict) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
