"""Directories, listing, move, delete, If-Match races, the change feed, fork and purge hooks."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from coditect.errors import ApiError, Conflict, PreconditionFailed
from coditect.files import changes, gc, hooks, paths, quota, service
from coditect.files.tree import FileSpace
from coditect.files.versions import Preconditions
from tests.helpers import run_threads
from tests.unit.files.conftest import Tenant, random_bytes

P = paths.parse


def now() -> datetime:
    return datetime.now(UTC)


def ids(n: int = 8) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


def names(t: Tenant, fs: FileSpace, prefix: str = "", recursive: bool = True, limit: int = 200) -> list[str]:
    out, cursor = [], None
    while True:
        items, cursor = service.list_files(
            t.db, fs, paths.parse(prefix, allow_root=True), recursive=recursive, limit=limit, cursor=cursor
        )
        out += [i.path for i in items]
        if cursor is None:
            return out


def test_mkdir_listing_and_pagination(tenant: Tenant) -> None:
    fs = tenant.session()
    info = service.mkdir(tenant.db, fs, P("empty"), ids(), now())
    assert info.type == "directory" and info.size == 0
    assert service.mkdir(tenant.db, fs, P("empty"), ids(), now()).created_at == info.created_at  # idempotent
    for p in ("b/2", "b/1", "a", "b/c/x", "b/c/y"):
        tenant.write(fs, p, p.encode())
    expected = ["a", "b", "b/1", "b/2", "b/c", "b/c/x", "b/c/y", "empty"]
    assert names(tenant, fs) == expected
    for limit in (1, 2, 3):
        assert names(tenant, fs, limit=limit) == expected  # depth-first resume across pages
    assert names(tenant, fs, recursive=False) == ["a", "b", "empty"]
    assert names(tenant, fs, "b", recursive=False) == ["b/1", "b/2", "b/c"]
    assert names(tenant, fs, "b/c/x") == ["b/c/x"]  # a file as prefix lists itself
    with pytest.raises(ApiError) as missing:
        names(tenant, fs, "nope")
    assert missing.value.status == 404
    with pytest.raises(Conflict) as on_file:
        service.mkdir(tenant.db, fs, P("a"), ids(), now())
    assert on_file.value.code == "already_exists"


def test_a_cursor_belongs_to_its_listing(tenant: Tenant) -> None:
    fs = tenant.session()
    for p in ("d/1", "d/2", "d/3"):
        tenant.write(fs, p, b"x")
    _, cursor = service.list_files(tenant.db, fs, P("d"), recursive=False, limit=1, cursor=None)
    with pytest.raises(ApiError) as caught:
        service.list_files(tenant.db, fs, paths.ROOT, recursive=False, limit=1, cursor=cursor)
    assert caught.value.code == "invalid_cursor"


@pytest.mark.slow
def test_delete_file_and_directories(tenant: Tenant) -> None:
    fs = tenant.session()
    for i in range(450):  # more than one trash step
        tenant.write(fs, f"tree/sub{i % 3}/f{i}", random_bytes(10))
    service.mkdir(tenant.db, fs, P("lonely"), ids(), now())
    with pytest.raises(Conflict) as caught:
        service.delete(tenant.db, fs, P("tree"), recursive=False)
    assert caught.value.code == "directory_not_empty"
    service.delete(tenant.db, fs, P("lonely"), recursive=False)  # empty: no flag needed
    service.delete(tenant.db, fs, P("tree"), recursive=True)
    assert names(tenant, fs) == []
    assert quota.usage(tenant.db, tenant.tenant_id).logical_bytes == 0
    gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0)
    assert quota.usage(tenant.db, tenant.tenant_id).physical_bytes == 0


@pytest.mark.slow
def test_recursive_delete_left_half_done_is_finished_by_gc(tenant: Tenant) -> None:
    fs = tenant.session()
    for i in range(300):
        tenant.write(fs, f"t/a/f{i}", random_bytes(5))
    service.delete(tenant.db, fs, P("t"), recursive=True, deadline=0)  # stops after one step
    assert names(tenant, fs) == []  # invisible at once
    assert quota.usage(tenant.db, tenant.tenant_id).logical_bytes > 0
    result = gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0)
    assert result["trash_emptied"] >= 1
    usage = quota.usage(tenant.db, tenant.tenant_id)
    assert (usage.logical_bytes, usage.physical_bytes) == (0, 0)


def test_move_file_and_directory_with_overwrite_rules(tenant: Tenant) -> None:
    fs = tenant.session()
    tenant.write(fs, "src/a.txt", b"A")
    tenant.write(fs, "src/deep/b.txt", b"B")
    tenant.write(fs, "other.txt", b"O")
    info = service.move(tenant.db, fs, P("src"), P("dst/moved"), overwrite=False, ids=ids(), now=now())
    assert info.path == "dst/moved" and info.type == "directory"
    assert names(tenant, fs) == [
        "dst",
        "dst/moved",
        "dst/moved/a.txt",
        "dst/moved/deep",
        "dst/moved/deep/b.txt",
        "other.txt",
    ]
    assert tenant.read(fs, "dst/moved/deep/b.txt") == b"B"
    with pytest.raises(Conflict) as exists:
        service.move(
            tenant.db, fs, P("other.txt"), P("dst/moved/a.txt"), overwrite=False, ids=ids(), now=now()
        )
    assert exists.value.code == "already_exists"
    service.move(tenant.db, fs, P("other.txt"), P("dst/moved/a.txt"), overwrite=True, ids=ids(), now=now())
    assert tenant.read(fs, "dst/moved/a.txt") == b"O"
    with pytest.raises(Conflict) as into_self:
        service.move(tenant.db, fs, P("dst"), P("dst/moved/x"), overwrite=False, ids=ids(), now=now())
    assert into_self.value.code == "invalid_move"
    with pytest.raises(Conflict) as non_empty:
        service.move(
            tenant.db, fs, P("dst/moved/a.txt"), P("dst/moved/deep"), overwrite=True, ids=ids(), now=now()
        )
    assert non_empty.value.code == "is_a_directory"
    with pytest.raises(ApiError) as gone:
        service.move(tenant.db, fs, P("nope"), P("x"), overwrite=False, ids=ids(), now=now())
    assert gone.value.status == 404
    assert quota.usage(tenant.db, tenant.tenant_id).logical_bytes == 2  # "A" went with the overwrite


@pytest.mark.slow
def test_moving_a_directory_of_1000_files_is_atomic_for_a_reader(tenant: Tenant) -> None:
    fs = tenant.session()
    for i in range(1000):
        tenant.write(fs, f"old/f{i:04d}", b"")
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            items, _ = service.list_files(tenant.db, fs, paths.ROOT, recursive=True, limit=5000, cursor=None)
            paths_ = [i.path for i in items if i.type == "file"]
            seen.append(
                (sum(p.startswith("old/") for p in paths_), sum(p.startswith("new/") for p in paths_))
            )

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # Waiting by sleeping, not spinning: a spinning main thread holds the GIL between forced
        # switches, and each of the reader's SQLite calls (which release it) then waits for a
        # switch: the listing outlived the store's 5 s transaction age (transaction_too_old).
        while len(seen) < 2:
            time.sleep(0.005)
        service.move(tenant.db, fs, P("old"), P("new"), overwrite=False, ids=ids(), now=now())
        count = len(seen)
        while len(seen) < count + 2:
            time.sleep(0.005)
    finally:
        stop.set()
        thread.join()
    assert set(seen) <= {(1000, 0), (0, 1000)}, set(seen)
    assert (1000, 0) in seen and (0, 1000) in seen


def race(tenant: Tenant, fs: FileSpace, etag: str, round_: int) -> list[object]:
    """Six threads write `doc` at once, each with If-Match: etag."""
    barrier = threading.Barrier(6)
    results: list[object] = []

    def writer(n: int) -> None:
        barrier.wait()
        try:
            results.append(tenant.write(fs, "doc", f"{round_}-{n}".encode(), Preconditions(if_match=(etag,))))
        except PreconditionFailed as exc:
            results.append(exc)

    run_threads([lambda n=n: writer(n) for n in range(6)])
    return results


def test_concurrent_writers_with_if_match_exactly_one_wins_per_version(tenant: Tenant) -> None:
    fs = tenant.session()
    etag = tenant.write(fs, "doc", b"v1").entry.etag
    assert etag is not None
    for round_ in range(3):
        results = race(tenant, fs, etag, round_)
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1 and len(results) == 6
        assert all(isinstance(r, PreconditionFailed) for r in results if r is not winners[0])
        etag = winners[0].entry.etag  # type: ignore[union-attr]
        assert winners[0].entry.version == round_ + 2  # type: ignore[union-attr]
    listed, _ = service.list_versions(tenant.db, fs, P("doc"), limit=50, cursor=None)
    assert [v.version for v in listed] == [4, 3, 2, 1]  # the losers wrote nothing
    with pytest.raises(PreconditionFailed):
        tenant.write(fs, "doc", b"x", Preconditions(if_none_match=("*",)))
    tenant.write(fs, "fresh", b"x", Preconditions(if_none_match=("*",)))


def test_change_feed_delivers_every_change_once_in_order(tenant: Tenant) -> None:
    fs = tenant.session()
    writes = 60
    received: list[str] = []
    done = threading.Event()

    def consume() -> None:
        cursor = None
        while not (done.is_set() and len(received) >= writes + 1):
            page = changes.read_changes(tenant.db, fs, cursor, limit=7, wait=0.5)
            received.extend(f"{c.op}:{c.path}" for c in page.changes)
            seqs = [c.seq for c in page.changes]
            assert seqs == sorted(seqs)
            cursor = page.cursor

    thread = threading.Thread(target=consume)
    thread.start()
    for i in range(writes):
        tenant.write(fs, f"d/f{i % 20}", str(i).encode())
    done.set()
    thread.join(timeout=60)
    expected = ["created:d"] + [f"{'created' if i < 20 else 'modified'}:d/f{i % 20}" for i in range(writes)]
    assert received == expected


def test_change_feed_long_poll_wakes_on_a_change_and_times_out_without(tenant: Tenant) -> None:
    fs = tenant.session()
    first = changes.read_changes(tenant.db, fs, None)
    assert first.changes == []
    empty = changes.read_changes(tenant.db, fs, first.cursor, wait=0.3)
    assert empty.changes == [] and empty.cursor == first.cursor
    timer = threading.Timer(0.3, lambda: tenant.write(fs, "new", b"x"))
    timer.start()
    page = changes.read_changes(tenant.db, fs, first.cursor, wait=20)
    timer.join()
    assert [(c.op, c.path) for c in page.changes] == [("created", "new")]
    service.move(tenant.db, fs, P("new"), P("renamed"), overwrite=False, ids=ids(), now=now())
    service.delete(tenant.db, fs, P("renamed"), recursive=False)
    rest = changes.read_changes(tenant.db, fs, page.cursor)
    assert [(c.op, c.path) for c in rest.changes] == [
        ("moved_from", "new"), ("moved_to", "renamed"), ("deleted", "renamed"),
    ]  # fmt: skip
    other = tenant.session()
    with pytest.raises(ApiError) as caught:
        changes.read_changes(tenant.db, other, page.cursor)
    assert caught.value.code == "invalid_cursor"


def test_fork_copies_metadata_shares_chunks_and_survives_the_parent(tenant: Tenant) -> None:
    parent, child = tenant.session(), tenant.session()
    data = random_bytes(40 * 65536)
    tenant.write(parent, "src/big.bin", data)
    tenant.write(parent, "src/small.txt", b"v1")
    tenant.write(parent, "src/small.txt", b"v2")
    service.mkdir(tenant.db, parent, P("emptydir"), ids(), now())
    physical = quota.usage(tenant.db, tenant.tenant_id).physical_bytes
    hooks.copy_tree(tenant.db, tenant.tenant_id, parent.session_id, child.session_id, check=False)
    hooks.copy_tree(tenant.db, tenant.tenant_id, parent.session_id, child.session_id, check=False)  # rerun
    assert names(tenant, child) == names(tenant, parent)
    assert quota.usage(tenant.db, tenant.tenant_id).physical_bytes == physical  # no chunk copied
    tenant.write(child, "src/small.txt", b"fork's")
    assert tenant.read(parent, "src/small.txt") == b"v2"
    # Delete the parent (the sessions purge: hook until done, then its subspace) and collect.
    while not tenant.db.transact(hooks.purge_file_refs, tenant.tenant_id, parent.session_id):
        pass
    tenant.db.transact(lambda tr: tr.clear_range_startswith(parent.space.raw_prefix))
    result = gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0)
    # Only the parent's history ("v1", not copied: a fork starts at the current versions) goes.
    assert result["chunks_freed"] == 1 and result["bytes_freed"] == 2
    assert tenant.read(child, "src/big.bin") == data
    assert tenant.read(child, "src/small.txt") == b"fork's"
    assert tenant.read(child, "src/small.txt", version=2) == b"v2"
    # Now the fork goes too: everything is freed.
    while not tenant.db.transact(hooks.purge_file_refs, tenant.tenant_id, child.session_id):
        pass
    gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0)
    usage = quota.usage(tenant.db, tenant.tenant_id)
    assert (usage.logical_bytes, usage.physical_bytes) == (0, 0)
