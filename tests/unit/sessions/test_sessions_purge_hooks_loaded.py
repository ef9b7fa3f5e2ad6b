"""A purge finished by another process (the cron gc job's `purge_pending`) runs every area's
purge hooks even though that process never imported the areas: a session's file references are
released, not leaked. Each step runs in a fresh interpreter so no earlier import can help."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

PREPARE = """
import io, sys
from coditect.files import paths, upload
from coditect.files.quota import Policy, usage
from coditect.files.tree import FileSpace
from coditect.files.versions import NO_CONDITIONS
from coditect.sessions import purge, service
from coditect.sessions.models import SessionCreate
from coditect.store import open_store
from tests.unit.sessions.helpers import context_bypassing_auth

url, tid, uid = sys.argv[1:4]
db = open_store(url)
ctx = context_bypassing_auth(tid, uid)
session = service.create(db, ctx, SessionCreate(name="leaky"))
data = bytes(range(256)) * 400  # 100 KiB: two chunks
upload.write_stream(db, FileSpace(tid, session.id), paths.parse("src/a.bin"), io.BytesIO(data),
                    content_length=len(data), content_type="application/octet-stream",
                    conditions=NO_CONDITIONS, policy=Policy())
# Mark it deleted only, as a DELETE whose purge budget ran out would leave it.
db.transact(lambda tr: purge.mark_deleting(tr, tid, session.id, 0))
print(usage(db, tid).logical_bytes)
"""

FINISH = """
import sys
from coditect.files.quota import usage
from coditect.sessions.purge import purge_pending
from coditect.store import open_store

url, tid = sys.argv[1:3]
db = open_store(url)
finished = purge_pending(db, budget_seconds=30)
print(finished, usage(db, tid).logical_bytes)
"""


def run(script: str, *args: str) -> str:
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_purge_pending_in_a_fresh_process_releases_the_sessions_files(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'store.db'}"
    tid, uid = str(uuid.uuid4()), str(uuid.uuid4())
    before = int(run(PREPARE, url, tid, uid))
    assert before == 256 * 400
    finished, after = (int(x) for x in run(FINISH, url, tid).split())
    assert finished == 1
    assert after == 0, "the files purge hook did not run: the session's file bytes are still counted"
