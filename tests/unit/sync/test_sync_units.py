"""Pure parts of the sync agent: rules, the exec-bit convention, the state file, the report."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from coditect.sync import localfs
from coditect.sync.client import EXEC_PARAM, join_type, split_type
from coditect.sync.report import MAX_PENDING_LISTED, MAX_SKIPPED_LISTED, Report
from coditect.sync.rules import SCRATCH, Rules, refused_name
from coditect.sync.state import State, Synced


def test_default_ignores_and_coditectignore(tmp_path: Path) -> None:
    rules = Rules(tmp_path)
    assert rules.ignored_any("node_modules/x/index.js")
    assert rules.ignored_any("a/b/__pycache__/m.pyc")
    assert rules.ignored_any(".venv", is_dir=True)
    assert rules.ignored_any(".cache/pip/x")
    assert rules.ignored_any(f"{SCRATCH}/dl-1")
    assert not rules.ignored_any(".git/config")  # synced on purpose (docs/workspaces-sync.md)
    assert not rules.ignored_any("src/main.py")
    assert not rules.ignored_any("debug.log")
    (tmp_path / ".coditectignore").write_text("*.log\n# comment\nbuild/\n!keep.log\n")
    assert rules.reload() is True
    assert rules.ignored_any("debug.log") and rules.ignored_any("deep/x.log")
    assert not rules.ignored_any("keep.log")
    assert rules.ignored_any("build/out/a.o")
    assert not rules.ignored_any("src/build.py")
    assert rules.reload() is False  # unchanged


def test_refused_names_reuse_the_files_api_rules() -> None:
    assert refused_name("ok/name.txt") is None
    assert refused_name("back\\slash") is not None
    assert refused_name("a/\u202eexe.txt") is not None  # bidi override
    assert refused_name("x" * 1100) is not None
    assert refused_name("cafe\u0301.txt") == "invalid_name: not in NFC form"


def test_exec_bit_rides_in_the_content_type() -> None:
    assert join_type("text/x-sh", True) == f"text/x-sh; {EXEC_PARAM}"
    assert join_type(None, False) == "application/octet-stream"
    assert split_type(f"text/plain; charset=utf-8; {EXEC_PARAM}") == ("text/plain; charset=utf-8", True)
    assert split_type("text/plain") == ("text/plain", False)
    assert split_type(None) == (None, False)


def test_file_mode_follows_the_umask_and_the_exec_bit(tmp_path: Path) -> None:
    target = tmp_path / "f"
    tmp = tmp_path / "tmp"
    tmp.write_bytes(b"x")
    localfs.install(tmp, target, True)
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & stat.S_IXUSR and not mode & 0o022 & ~(0o666 & ~localfs._UMASK)
    localfs.set_executable(target, False)
    assert not target.stat().st_mode & 0o111


def test_walk_skips_ignored_directories_and_reports_kinds(tmp_path: Path) -> None:
    (tmp_path / "a/node_modules/x").mkdir(parents=True)
    (tmp_path / "a/f.txt").write_text("x")
    (tmp_path / "link").symlink_to("a")
    os.mkfifo(tmp_path / "fifo")
    found = dict(localfs.walk(tmp_path, Rules(tmp_path)))
    assert set(found) == {"a", "a/f.txt", "link", "fifo"}
    assert found["link"].kind == "symlink" and found["fifo"].kind == "fifo" and found["a"].kind == "dir"
    assert dict(localfs.walk(tmp_path, Rules(tmp_path), "a")).keys() == {"a/f.txt"}


def test_state_round_trip_is_atomic_and_tolerates_garbage(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = State(path)
    state.put("a/b.txt", Synced("file", "e1", 3, "ab" * 32, 10, 123, True, "text/plain"))
    state.put("a", Synced("dir"))
    state.set_cursor("cur")
    state.save()
    assert not path.with_name("state.json.tmp").exists()
    loaded = State.load(path)
    assert loaded.cursor == "cur" and loaded.files == state.files
    loaded.drop("a")
    assert loaded.files == {}
    path.write_text("{not json")
    assert State.load(path).files == {}
    path.write_text(json.dumps({"format": 999, "files": {"x": {}}}))
    assert State.load(path).files == {}


def full_report(skip_prefix: str, skip_reason: str) -> Report:
    """A report over every limit: 80 pending paths, 150 skipped ones, 60 conflicts."""
    report = Report()
    report.set_pending([f"p{i}" for i in range(80)])
    for i in range(150):
        report.skip(f"{skip_prefix}s{i:03}", skip_reason)
    for i in range(60):
        report.conflict(f"c{i}", "version 1")
    return report


def test_report_shape_and_bounds() -> None:
    report = full_report("", "symlink")
    body = report.as_json()
    assert set(body) == {"state", "last_push_at", "last_pull_at", "pending", "pending_paths", "conflicts",
                         "conflict_count", "skipped"}  # fmt: skip
    assert body["pending"] == 80 and len(body["pending_paths"]) == MAX_PENDING_LISTED
    assert len(body["skipped"]) == MAX_SKIPPED_LISTED
    assert body["skipped"][0] == {"path": "s000", "reason": "symlink"}
    assert body["conflict_count"] == 60 and len(body["conflicts"]) == 50
    assert set(body["conflicts"][0]) == {"path", "kept_as", "at"} and body["conflicts"][-1]["path"] == "c59"
    report.unskip("s000")
    assert report.as_json()["skipped"][0]["path"] == "s001"


def test_a_full_report_is_what_the_sync_route_accepts() -> None:
    # The agent's report and the API's model (PUT /workspaces/{id}/sync) agree at their limits.
    from coditect.workspaces.models import SyncReport

    report = full_report("dir/", "clash: a directory in the store, not a directory here")
    body = json.dumps(report.as_json())
    accepted = SyncReport.model_validate_json(body, strict=True)
    assert len(accepted.skipped) == MAX_SKIPPED_LISTED and accepted.conflict_count == 60
