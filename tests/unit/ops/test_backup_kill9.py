"""kill -9 in the middle of a backup leaves no manifest: the partial backup is never listed as
complete, never verified or restored, and retention removes it after the grace period."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coditect.config import Settings
from coditect.ops import archive
from coditect.ops.backup import take_backup
from coditect.ops.retention import plan_retention
from coditect.store import open_store


def large_store(path: Path, megabytes: int) -> None:
    """Rows written straight into the store's kv table (same schema; the store API would take longer)."""
    open_store(f"sqlite://{path}").close()
    conn = sqlite3.connect(path)
    value = os.urandom(50_000)
    conn.executemany(
        "INSERT INTO kv VALUES (?, ?)", ((b"bulk%08d" % i, value) for i in range(megabytes * 20))
    )
    conn.commit()
    conn.close()


@pytest.mark.slow
def test_sigkill_during_backup_leaves_no_manifest(tmp_path: Path) -> None:
    store = tmp_path / "data" / "store.db"
    large_store(store, 100)
    backups = tmp_path / "data" / "backups"
    env = {**os.environ, "CODITECT_DATA_DIR": str(tmp_path / "data"), "CODITECT_BACKUP_STEP_PAGES": "64",
           "CODITECT_BACKUP_STEP_SLEEP": "0.01"}  # fmt: skip
    env.pop("CODITECT_STORE", None)
    # `with`: the pipes are closed (and the process waited for) however the block ends.
    with subprocess.Popen([sys.executable, "-m", "coditect.ops", "backup"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:  # fmt: skip
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline:
            partial = (
                [p for p in backups.glob("*/.snapshot.db") if p.stat().st_size > 1_000_000]
                if backups.exists()
                else []
            )
            if partial or process.poll() is not None:
                break
            time.sleep(0.01)
        assert partial, f"the backup never got going: {process.communicate()}"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    directory = partial[0].parent
    assert not (directory / archive.MANIFEST).exists()
    assert not list(directory.glob(".manifest*")), "not even a half-written manifest"
    infos = archive.list_backups(backups)
    assert [(i.id, i.complete) for i in infos] == [(directory.name, False)]
    listed = subprocess.run([sys.executable, "-m", "coditect.ops", "list", "--json"], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert [row["state"] for row in json.loads(listed.stdout)] == ["partial"]
    verify = subprocess.run(
        [sys.executable, "-m", "coditect.ops", "verify"], env=env, capture_output=True, text=True
    )
    assert verify.returncode == 1 and "no complete backup" in verify.stderr

    # the next backup is whole, and retention removes the partial one once past its grace period
    settings = Settings(data_dir=tmp_path / "data")
    with contextlib.closing(open_store(f"sqlite://{store}")) as db:
        info = take_backup(db, settings, time.time())
    assert info is not None and info.complete
    infos = archive.list_backups(backups)
    assert plan_retention(infos, now=time.time(), keep_last=1, keep_daily=0, keep_weekly=0) == []
    doomed = plan_retention(infos, now=time.time() + 7 * 3600, keep_last=1, keep_daily=0, keep_weekly=0)
    assert [d.id for d in doomed] == [directory.name]
