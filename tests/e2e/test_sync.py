"""The sync agent as a real subprocess against real files/files-ops processes behind a real
gateway (tests/e2e/sync_stack.py): both directions, hydration, conflicts, faults, stop, rules.

Every wait is a condition with a generous deadline; nothing here asserts how fast it was
(bench/bench_sync.py measures that)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sync_stack import SyncStack, User, wait_for

pytestmark = pytest.mark.e2e

QUOTA = 24 * 1024 * 1024
SLOW = 60.0


@pytest.fixture(scope="module")
def sync_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncStack]:
    stack = SyncStack.start(
        Path(tmp_path_factory.mktemp("syncstack")), {"CODITECT_FILES_QUOTA_BYTES": str(QUOTA)}
    )
    yield stack
    stack.stop()


@pytest.fixture
def user(sync_stack: SyncStack) -> User:
    return sync_stack.user()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The workspace's tree the test's agent syncs."""
    return tmp_path / "ws"


def in_store(user: User, rel: str, data: bytes) -> bool:
    return user.read(rel) == data


def local_is(path: Path, data: bytes | None) -> bool:
    try:
        return path.read_bytes() == data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return data is None


def test_both_directions_nested_binary_empty_renames_deletes(
    sync_stack: SyncStack, user: User, root: Path
) -> None:
    binary = bytes(range(256)) * 1000 + os.urandom(5000)
    assert user.put("api/deep/er/bin.dat", binary).status_code == 201
    assert user.put("api/empty.txt", b"").status_code == 201
    agent = sync_stack.ready_agent(user, root)
    assert (root / "api/deep/er/bin.dat").read_bytes() == binary
    assert (root / "api/empty.txt").read_bytes() == b""

    # workspace → store: nested, binary, empty, mkdir
    (root / "ws/a/b/c").mkdir(parents=True)
    (root / "ws/a/b/c/n.bin").write_bytes(binary[::-1])
    (root / "ws/a/empty").write_bytes(b"")
    (root / "ws/emptydir").mkdir()
    wait_for(
        lambda: in_store(user, "ws/a/b/c/n.bin", binary[::-1]) and in_store(user, "ws/a/empty", b""),
        SLOW,
        "push",
    )
    wait_for(lambda: user.listing().get("ws/emptydir", {}).get("type") == "directory", SLOW, "mkdir pushed")

    # store → workspace: write, move, delete
    assert user.put("api/deep/new.txt", b"new from api").status_code == 201
    wait_for(lambda: local_is(root / "api/deep/new.txt", b"new from api"), SLOW, "pull of a write")
    assert user.move("api/deep/er", "api/moved").status_code == 200
    wait_for(lambda: local_is(root / "api/moved/bin.dat", binary), SLOW, "pull of a directory move")
    assert not (root / "api/deep/er").exists()
    assert user.delete("api/empty.txt").status_code == 204
    wait_for(lambda: not (root / "api/empty.txt").exists(), SLOW, "pull of a delete")

    # workspace renames are moves in the store (same file: its version history goes with it)
    before = user.listing()["ws/a/b/c/n.bin"]
    os.rename(root / "ws/a/b/c/n.bin", root / "ws/a/renamed.bin")
    wait_for(
        lambda: "ws/a/renamed.bin" in user.listing() and "ws/a/b/c/n.bin" not in user.listing(), SLOW, "move"
    )
    after = user.listing()["ws/a/renamed.bin"]
    assert after["etag"] == before["etag"]  # a move, not a delete + new upload
    os.rename(root / "ws/a", root / "ws/z")
    wait_for(lambda: "ws/z/renamed.bin" in user.listing() and "ws/a" not in user.listing(), SLOW, "dir move")
    assert user.read("ws/z/empty") == b""

    # workspace deletes
    (root / "ws/z/renamed.bin").unlink()
    wait_for(lambda: "ws/z/renamed.bin" not in user.listing(), SLOW, "delete pushed")
    for p in sorted((root / "ws").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / "ws").rmdir()
    wait_for(lambda: not any(p.startswith("ws") for p in user.listing()), SLOW, "recursive delete pushed")
    assert user.read("api/moved/bin.dat") == binary  # untouched
    status = agent.wait_idle()
    assert status["state"] == "syncing" and status["conflict_count"] == 0 and status["skipped"] == []
    assert status["last_push_at"] and status["last_pull_at"]
    assert agent.stop() == 0


def test_hydrates_a_thousand_files_before_ready(sync_stack: SyncStack, user: User, root: Path) -> None:
    expected = {f"d{i % 10}/sub{i % 7}/f{i}.txt": f"file {i}\n".encode() * (i % 5) for i in range(1000)}
    for rel, data in expected.items():
        assert user.put(rel, data).status_code == 201
    agent = sync_stack.agent(user, root)
    agent.wait_ready(180)
    for rel, data in expected.items():  # all of it on disk as soon as /healthz says ready
        assert (root / rel).read_bytes() == data, rel
    files = [p for p in root.rglob("*") if p.is_file() and ".coditect-sync" not in p.parts]
    assert len(files) == 1000
    assert agent.stop() == 0


def test_concurrent_edits_keep_both_contents(sync_stack: SyncStack, user: User, root: Path) -> None:
    assert user.put("doc.txt", b"original").status_code == 201
    agent = sync_stack.ready_agent(user, root)
    os.kill(agent.process.pid, signal.SIGSTOP)  # both sides edit while the agent cannot sync
    try:
        (root / "doc.txt").write_bytes(b"workspace edit")
        assert user.put("doc.txt", b"api edit").status_code == 200
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)
    wait_for(lambda: agent.status()["conflict_count"] == 1, SLOW, "the conflict to be reported")
    status = agent.wait_idle()
    conflict = status["conflicts"][0]
    assert conflict["path"] == "doc.txt" and "version 2" in conflict["kept_as"]
    # The workspace's content is the head; the API's is the version before it.
    wait_for(lambda: in_store(user, "doc.txt", b"workspace edit"), SLOW, "head = workspace content")
    assert (root / "doc.txt").read_bytes() == b"workspace edit"
    r = sync_stack.http.get(user.url("doc.txt"), params={"version": 2}, headers=user.headers)
    assert r.status_code == 200 and r.content == b"api edit"
    metrics = agent.get("/metrics")
    assert metrics is not None and "coditect_sync_conflicts_total 1.0" in metrics.text
    assert agent.stop() == 0


def test_delete_against_modify_keeps_the_content(sync_stack: SyncStack, user: User, root: Path) -> None:
    assert user.put("a.txt", b"a0").status_code == 201
    assert user.put("b.txt", b"b0").status_code == 201
    agent = sync_stack.ready_agent(user, root)
    os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        (root / "a.txt").unlink()  # deleted here, modified in the store
        assert user.put("a.txt", b"a1 from api").status_code == 200
        (root / "b.txt").write_bytes(b"b1 from workspace")  # modified here, deleted in the store
        assert user.delete("b.txt").status_code == 204
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)
    wait_for(lambda: local_is(root / "a.txt", b"a1 from api"), SLOW, "the store's edit back in the workspace")
    wait_for(
        lambda: in_store(user, "b.txt", b"b1 from workspace"), SLOW, "the workspace's edit back in the store"
    )
    try:
        wait_for(lambda: agent.status()["conflict_count"] == 2, SLOW, "two conflicts reported")
    except TimeoutError:
        raise AssertionError(f"{agent.status()}\n{agent.output()[-3000:]}") from None
    kept = {c["path"]: c["kept_as"] for c in agent.status()["conflicts"]}
    assert kept["a.txt"].startswith("nothing lost") and kept["b.txt"].startswith("nothing lost")
    assert in_store(user, "a.txt", b"a1 from api") and local_is(root / "b.txt", b"b1 from workspace")
    assert agent.stop() == 0


def test_kill_9_then_restart_loses_nothing_and_reuploads_nothing(
    sync_stack: SyncStack, user: User, root: Path
) -> None:
    agent = sync_stack.ready_agent(user, root)
    early = {f"early/{i}.txt": os.urandom(2000) for i in range(40)}
    for rel, data in early.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    agent.wait_idle()
    wait_for(lambda: all(in_store(user, r, d) for r, d in early.items()), SLOW, "early files in the store")
    late = {f"late/{i}.txt": os.urandom(3000) for i in range(40)}
    (root / "late").mkdir()
    for i, (rel, data) in enumerate(late.items()):
        (root / rel).write_bytes(data)
        if i == 20:
            agent.process.kill()  # kill -9 in the middle of the writes
    agent.process.wait()
    assert all(in_store(user, r, d) for r, d in early.items())  # what was synced before the crash
    (root / "only-local.txt").write_bytes(b"made while the agent was down")
    user.put("api-while-down.txt", b"api")
    puts_before = sync_stack.counts().get("PUT files", 0)
    again = sync_stack.ready_agent(user, root, state_file=agent.state_file)
    again.wait_idle()
    wait_for(lambda: all(in_store(user, r, d) for r, d in late.items()), SLOW, "late files in the store")
    assert in_store(user, "only-local.txt", b"made while the agent was down")
    assert (root / "api-while-down.txt").read_bytes() == b"api"
    assert all((root / r).read_bytes() == d for r, d in early.items())
    uploads = sync_stack.counts().get("PUT files", 0) - puts_before
    # At most the late files and the local-only one: none of the 40 early files went up again.
    assert uploads <= len(late) + 1, uploads
    assert again.stop() == 0


def test_restart_after_a_clean_stop_uploads_nothing(sync_stack: SyncStack, user: User, root: Path) -> None:
    for i in range(30):
        user.put(f"keep/{i}.txt", f"{i}".encode())
    first = sync_stack.ready_agent(user, root)
    assert first.stop() == 0
    user.delete("keep/0.txt")  # deleted in the store while no agent ran: deleted here too
    (root / "keep/1.txt").write_bytes(b"changed while down")
    puts = sync_stack.counts().get("PUT files", 0)
    second = sync_stack.ready_agent(user, root, state_file=first.state_file)
    second.wait_idle()
    wait_for(lambda: in_store(user, "keep/1.txt", b"changed while down"), SLOW, "the local change pushed")
    assert not (root / "keep/0.txt").exists()
    assert sync_stack.counts().get("PUT files", 0) - puts == 1
    assert second.stop() == 0


def test_api_down_for_ten_seconds_buffers_and_retries(sync_stack: SyncStack, user: User, root: Path) -> None:
    agent = sync_stack.ready_agent(user, root)
    sync_stack.stop_gateway()
    try:
        for i in range(5):
            (root / f"offline-{i}.txt").write_bytes(f"written offline {i}".encode())
        wait_for(lambda: agent.status()["pending"] == 5, SLOW, "five pending paths")
        time.sleep(10)  # the API stays down for 10 s (the scenario, not an assertion)
        status = agent.status()
        assert status["pending"] == 5 and status["pending_paths"] == [f"offline-{i}.txt" for i in range(5)]
    finally:
        sync_stack.start_gateway()
    wait_for(lambda: all(in_store(user, f"offline-{i}.txt", f"written offline {i}".encode()) for i in range(5)),
             SLOW, "the buffered writes to land")  # fmt: skip
    agent.wait_idle()
    user.put("after.txt", b"pull resumed")
    wait_for(lambda: local_is(root / "after.txt", b"pull resumed"), SLOW, "the pull to resume")
    assert agent.stop() == 0


def test_full_quota_keeps_the_local_copy_and_resumes(sync_stack: SyncStack, user: User, root: Path) -> None:
    big = os.urandom(QUOTA - 1024 * 1024)
    assert user.put("big.bin", big).status_code == 201
    agent = sync_stack.ready_agent(user, root)
    data = os.urandom(2 * 1024 * 1024)
    (root / "over.bin").write_bytes(data)
    wait_for(lambda: "quota full: over.bin" in agent.output(), SLOW, "the 507 to be logged")
    assert agent.status()["pending_paths"] == ["over.bin"]
    assert (root / "over.bin").read_bytes() == data and user.read("over.bin") is None
    assert user.delete("big.bin").status_code == 204  # room again
    try:
        wait_for(lambda: in_store(user, "over.bin", data), 120, "the pending write after the quota freed up")
    except TimeoutError:
        raise AssertionError(agent.output()[-3000:]) from None
    assert agent.stop() == 0


def test_sigterm_flushes_and_reports_timeouts(sync_stack: SyncStack, user: User, root: Path) -> None:
    agent = sync_stack.ready_agent(user, root)
    (root / "last-second.txt").write_bytes(b"saved just before the stop")
    assert agent.stop(signal.SIGTERM) == 0
    assert in_store(user, "last-second.txt", b"saved just before the stop")

    second = sync_stack.ready_agent(user, root, state_file=agent.state_file, flush_timeout=3)
    sync_stack.stop_gateway()
    try:
        (root / "stuck.txt").write_bytes(b"cannot reach the store")
        wait_for(lambda: second.status()["pending"] == 1, SLOW, "the pending write")
        assert second.stop(signal.SIGTERM) == 75
    finally:
        sync_stack.start_gateway()
    assert "stuck.txt" in second.output()
    assert (root / "stuck.txt").read_bytes() == b"cannot reach the store"


def test_ignore_rules_and_skipped_paths_are_reported(sync_stack: SyncStack, user: User, root: Path) -> None:
    agent = sync_stack.ready_agent(user, root, env={"CODITECT_MAX_FILE_SIZE": "4096"})
    (root / ".coditectignore").write_text("*.log\nbuild/\n")
    wait_for(
        lambda: "*.log" in (user.read(".coditectignore") or b"").decode(), SLOW, ".coditectignore pushed"
    )
    (root / "node_modules/pkg").mkdir(parents=True)
    (root / "node_modules/pkg/index.js").write_text("x")
    (root / "__pycache__").mkdir()
    (root / "__pycache__/m.pyc").write_bytes(b"x")
    (root / "build").mkdir()
    (root / "build/out.o").write_bytes(b"x")
    (root / "debug.log").write_text("x")
    (root / "kept.txt").write_text("kept")
    (root / "back\\slash.txt").write_text("x")
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / "link").symlink_to("kept.txt")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    try:
        wait_for(lambda: len(agent.status()["skipped"]) == 5, SLOW, "five skipped paths")
        skipped = {s["path"]: s["reason"] for s in agent.status()["skipped"]}
        assert skipped["link"] == "symlink" and skipped["pipe"] == "fifo" and skipped["sock"] == "socket"
        assert skipped["big.bin"].startswith("too_large")
        assert skipped["back\\slash.txt"].startswith("invalid_name")
        wait_for(lambda: in_store(user, "kept.txt", b"kept"), SLOW, "kept.txt pushed")
        agent.wait_idle()
        stored = set(user.listing())
        for name in ("node_modules", "__pycache__", "build", "debug.log", "link", "pipe", "sock", "big.bin"):
            assert name not in stored, name
    finally:
        sock.close()
    assert agent.stop() == 0


def test_executable_bit_survives_a_round_trip(
    sync_stack: SyncStack, user: User, tmp_path: Path, root: Path
) -> None:
    agent = sync_stack.ready_agent(user, root)
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (root / "plain.txt").write_text("plain")
    wait_for(lambda: "run.sh" in user.listing() and "plain.txt" in user.listing(), SLOW, "pushed")
    assert "x-coditect-exec=1" in user.listing()["run.sh"]["content_type"]
    assert "x-coditect-exec=1" not in user.listing()["plain.txt"]["content_type"]
    user.put("api-tool", b"#!/bin/sh\n", **{"Content-Type": "text/x-sh; x-coditect-exec=1"})
    wait_for(lambda: (root / "api-tool").exists(), SLOW, "pulled")
    assert os.access(root / "api-tool", os.X_OK)
    (root / "plain.txt").chmod(0o755)  # a mode change alone is a change
    wait_for(lambda: "x-coditect-exec=1" in user.listing()["plain.txt"]["content_type"], SLOW, "chmod pushed")
    assert agent.stop() == 0
    fresh = tmp_path / "fresh"
    other = sync_stack.ready_agent(user, fresh)
    assert os.access(fresh / "run.sh", os.X_OK) and os.access(fresh / "plain.txt", os.X_OK)
    assert os.access(fresh / "api-tool", os.X_OK)
    assert hashlib.sha256((fresh / "run.sh").read_bytes()).hexdigest() == user.listing()["run.sh"]["sha256"]
    assert other.stop() == 0


def test_healthz_is_503_until_hydrated(sync_stack: SyncStack, user: User, root: Path) -> None:
    sync_stack.stop_gateway()  # hydration cannot finish while the API is down
    try:
        agent = sync_stack.agent(user, root)
        wait_for(lambda: agent.get("/healthz") is not None, SLOW, "the health server")
        r = agent.get("/healthz")
        assert r is not None and r.status_code == 503
        assert agent.status()["state"] == "hydrating"
    finally:
        sync_stack.start_gateway()
    agent.wait_ready()
    assert agent.status()["state"] == "syncing"
    assert agent.stop() == 0
