"""Content round trips, ranges, dedup, versions/retention, quota, interrupted uploads, GC."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest

from coditect.errors import ApiError, Conflict, InsufficientStorage, PayloadTooLarge
from coditect.files import chunks, gc, paths, quota, service, upload
from coditect.files.chunks import CHUNK_SIZE
from coditect.files.quota import Policy
from coditect.files.tree import FileSpace
from tests.unit.files.conftest import Tenant, random_bytes

C = CHUNK_SIZE
STAGED = (upload.BATCH_CHUNKS + 1) * C  # the smallest size that goes through staging


def usage(t: Tenant) -> tuple[int, int]:
    u = quota.usage(t.db, t.tenant_id)
    return u.logical_bytes, u.physical_bytes


def collect(t: Tenant) -> dict[str, object]:
    return gc.collect_garbage(t.db, budget_seconds=60, grace_seconds=0, upload_stale_seconds=0)


def staged_uploads(t: Tenant) -> int:
    return len(t.db.transact(lambda tr: tr.get_range(*upload.uploads(t.tenant_id).range())))


@pytest.mark.parametrize(
    "size", [0, 1, C - 1, C, C + 1, STAGED - 1, STAGED, STAGED + 1, 5 * 1024 * 1024], ids=lambda n: f"{n}B"
)
def test_round_trip_keeps_every_byte(tenant: Tenant, size: int) -> None:
    fs = tenant.session()
    data = random_bytes(size)
    written = tenant.write(fs, "dir/file.bin", data)
    assert written.created and written.entry.size == size
    assert written.entry.sha256 == hashlib.sha256(data).hexdigest()
    back = tenant.read(fs, "dir/file.bin")
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest() and len(back) == size
    assert staged_uploads(tenant) == 0  # nothing left staged after a publish
    assert usage(tenant) == (size, size)


@pytest.mark.slow
def test_round_trip_of_50_mib(tenant: Tenant) -> None:
    fs = tenant.session()
    data = random_bytes(50 * 1024 * 1024)
    tenant.write(fs, "big.bin", data)
    assert hashlib.sha256(tenant.read(fs, "big.bin")).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        (0, 1),
        (0, C),
        (C - 1, C + 1),
        (C, C + 1),
        (C - 1, 3 * C + 1),
        (3 * C, 3 * C + 7),
        (5, 5),
        (0, 3 * C + 7),
    ],
)
def test_ranges_across_chunk_boundaries(tenant: Tenant, start: int, stop: int) -> None:
    fs = tenant.session()
    data = random_bytes(3 * C + 7)
    tenant.write(fs, "r.bin", data)
    assert tenant.read(fs, "r.bin", start=start, stop=stop) == data[start:stop]


def test_same_content_in_two_sessions_is_stored_once(tenant: Tenant) -> None:
    data = random_bytes(5 * 1024 * 1024)
    a, b = tenant.session(), tenant.session()
    tenant.write(a, "x.bin", data)
    logical, physical = usage(tenant)
    tenant.write(b, "elsewhere/y.bin", data)
    assert usage(tenant) == (2 * logical, physical)  # logical doubles, physical does not move
    assert tenant.read(b, "elsewhere/y.bin") == data


def test_identical_chunks_inside_one_file_are_stored_once(tenant: Tenant) -> None:
    fs = tenant.session()
    tenant.write(fs, "zeros.bin", b"\x00" * (40 * C))
    assert usage(tenant) == (40 * C, C)
    service.delete(tenant.db, fs, paths.parse("zeros.bin"), recursive=False)
    collect(tenant)
    assert usage(tenant) == (0, 0)


def test_dedup_is_per_tenant(db, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    other = Tenant(db, "7c9e6679-7425-40de-944b-e07fc1f90ae7", Policy())
    data = random_bytes(3 * C)
    tenant.write(tenant.session(), "f", data)
    other.write(other.session(), "f", data)
    assert usage(tenant)[1] == 3 * C and usage(other)[1] == 3 * C


def test_every_write_is_a_version_listed_newest_first_and_readable(tenant: Tenant) -> None:
    fs = tenant.session()
    contents = [random_bytes(n) for n in (10, 2 * C + 3, 0, 7)]
    for i, data in enumerate(contents, start=1):
        written = tenant.write(fs, "v.txt", data)
        assert written.entry.version == i and written.created == (i == 1)
    listed, cursor = service.list_versions(tenant.db, fs, paths.parse("v.txt"), limit=10, cursor=None)
    assert [v.version for v in listed] == [4, 3, 2, 1] and cursor is None
    assert len({v.etag for v in listed}) == 4
    for i, data in enumerate(contents, start=1):
        assert tenant.read(fs, "v.txt", version=i) == data
    page1, cursor = service.list_versions(tenant.db, fs, paths.parse("v.txt"), limit=3, cursor=None)
    page2, last = service.list_versions(tenant.db, fs, paths.parse("v.txt"), limit=3, cursor=cursor)
    assert [v.version for v in page1 + page2] == [4, 3, 2, 1] and last is None


def test_restore_is_a_new_version_with_the_old_content(tenant: Tenant) -> None:
    fs = tenant.session()
    first, second = random_bytes(3 * C), random_bytes(100)
    tenant.write(fs, "doc", first)
    tenant.write(fs, "doc", second)
    physical = usage(tenant)[1]
    info = service.restore(
        tenant.db, fs, paths.parse("doc"), 1, restore_id="r1", now=datetime.now(UTC), policy=tenant.policy
    )
    assert info.version == 3 and info.sha256 == hashlib.sha256(first).hexdigest()
    assert tenant.read(fs, "doc") == first
    assert usage(tenant)[1] == physical  # restore shares the old content
    with pytest.raises(ApiError) as missing:
        service.restore(
            tenant.db, fs, paths.parse("doc"), 9, restore_id="r2", now=datetime.now(UTC), policy=tenant.policy
        )
    assert missing.value.status == 404


def test_retention_keeps_the_newest_n_and_gc_frees_the_rest(db) -> None:  # type: ignore[no-untyped-def]
    t = Tenant(db, "6ba7b810-9dad-41d1-80b4-00c04fd430c8", Policy(keep_versions=2, keep_days=0))
    fs = t.session()
    contents = [random_bytes(2 * C) for _ in range(4)]
    for data in contents:
        t.write(fs, "f", data)
    assert listed_versions(t, fs, "f") == [4, 3]
    collect(t)
    assert usage(t) == (4 * C, 4 * C)
    assert t.read(fs, "f", version=3) == contents[2]
    with pytest.raises(ApiError):
        t.read(fs, "f", version=1)


def age(t: Tenant, fs: FileSpace, name: str, *versions: int, days: float = 2) -> None:
    """Back-date versions of file `name` by `days` (as if written then)."""
    from coditect.files.models import VERSION
    from coditect.files.tree import get_version, locate

    def back_date(tr):  # type: ignore[no-untyped-def]
        entry = locate(tr, fs, paths.parse(name)).entry
        for version in versions:
            record = get_version(tr, fs, entry.id, version)
            old = record.model_copy(update={"created_at": record.created_at - timedelta(days=days)})
            tr.set(fs.version_key(entry.id, version), VERSION.encode(old))

    t.db.transact(back_date)


def listed_versions(t: Tenant, fs: FileSpace, name: str) -> list[int]:
    listed, _ = service.list_versions(t.db, fs, paths.parse(name), limit=100, cursor=None)
    return [v.version for v in listed]


def test_retention_by_age_never_drops_the_current_version(db) -> None:  # type: ignore[no-untyped-def]
    t = Tenant(db, "6ba7b811-9dad-41d1-80b4-00c04fd430c8", Policy(keep_versions=100, keep_days=1))
    fs = t.session()
    t.write(fs, "f", b"old")
    age(t, fs, "f", 1)
    t.write(fs, "f", b"new")
    assert listed_versions(t, fs, "f") == [2]


def test_retention_drops_every_expired_version_and_then_by_count(db) -> None:  # type: ignore[no-untyped-def]
    t = Tenant(db, "6ba7b812-9dad-41d1-80b4-00c04fd430c8", Policy(keep_versions=3, keep_days=1))
    fs = t.session()
    for i in range(4):
        t.write(fs, "f", b"v%d" % i)
    assert listed_versions(t, fs, "f") == [4, 3, 2]  # by count
    age(t, fs, "f", 2, 3)  # both within the count, both expired
    t.write(fs, "f", b"v4")
    assert listed_versions(t, fs, "f") == [5, 4]
    assert usage(t)[0] == 4  # the logical bytes of the two kept versions


def test_a_write_decodes_only_the_versions_it_may_drop(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A file at its retention limit is written often (an editor's autosave): the write must not
    decode its whole history each time — only the version it drops and the one whose age it checks."""
    from coditect.files.models import VERSION

    t = Tenant(db, "6ba7b813-9dad-41d1-80b4-00c04fd430c8", Policy(keep_versions=8, keep_days=30))
    fs = t.session()
    for i in range(8):
        t.write(fs, "f", b"v%d" % i)
    decoded: list[int] = []
    decode = VERSION.decode

    def counting(value: bytes):  # type: ignore[no-untyped-def]
        record = decode(value)
        decoded.append(record.version)
        return record

    monkeypatch.setattr(VERSION, "decode", counting)
    t.write(fs, "f", b"v8")
    monkeypatch.undo()
    # The current version (8) is read by the write itself; of the older ones, only these two:
    assert [v for v in decoded if v != 8] == [1, 2]  # dropped by count; kept by age: the walk stops
    assert listed_versions(t, fs, "f") == list(range(9, 1, -1))


def test_quota_refuses_before_writing_anything(db) -> None:  # type: ignore[no-untyped-def]
    t = Tenant(db, "6ba7b812-9dad-41d1-80b4-00c04fd430c8", Policy(quota_bytes=3 * C))
    fs = t.session()
    t.write(fs, "a", random_bytes(2 * C))
    before = usage(t)
    with pytest.raises(InsufficientStorage) as caught:
        t.write(fs, "b", random_bytes(2 * C))
    assert caught.value.status == 507 and caught.value.code == "quota_exceeded"
    # A body of unknown length is stopped while reading, and leaves nothing either.
    with pytest.raises(InsufficientStorage):
        upload.write_stream(
            db, fs, paths.parse("c"), io.BytesIO(random_bytes(40 * C)), content_length=None,
            content_type="x/y", conditions=upload.Preconditions(), policy=t.policy,
        )  # fmt: skip
    assert usage(t) == before and staged_uploads(t) == 0
    names = [f.path for f in service.list_files(db, fs, paths.ROOT, recursive=True, limit=50, cursor=None)[0]]
    assert names == ["a"]


def test_too_large_is_413_before_and_while_reading(db) -> None:  # type: ignore[no-untyped-def]
    t = Tenant(db, "6ba7b813-9dad-41d1-80b4-00c04fd430c8", Policy(max_file_size=20 * C))
    fs = t.session()
    with pytest.raises(PayloadTooLarge) as caught:
        t.write(fs, "big", random_bytes(20 * C + 1))
    assert caught.value.code == "file_too_large"
    with pytest.raises(PayloadTooLarge):
        upload.write_stream(
            db, fs, paths.parse("big"), io.BytesIO(random_bytes(30 * C)), content_length=None,
            content_type="x/y", conditions=upload.Preconditions(), policy=t.policy,
        )  # fmt: skip
    assert usage(t)[0] == 0 and staged_uploads(t) == 0  # staged references released at once
    collect(t)
    assert usage(t) == (0, 0)  # and GC frees the chunks nothing references


class Broken(io.RawIOBase):
    """A body that delivers `good` bytes, then fails like a dropped connection."""

    def __init__(self, good: bytes) -> None:
        self.stream = io.BytesIO(good)

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        if not data:
            raise ConnectionResetError("client went away")
        return data


def test_interrupted_upload_leaves_the_old_version_and_gc_collects_staged_chunks(tenant: Tenant) -> None:
    fs = tenant.session()
    old = random_bytes(3 * C)
    tenant.write(fs, "f", old)
    before = usage(tenant)
    with pytest.raises(ConnectionResetError):
        upload.write_stream(
            tenant.db, fs, paths.parse("f"), Broken(random_bytes(60 * C)), content_length=80 * C,
            content_type="x/y", conditions=upload.Preconditions(), policy=tenant.policy,
        )  # fmt: skip
    assert tenant.read(fs, "f") == old
    collect(tenant)
    assert usage(tenant) == before and staged_uploads(tenant) == 0


def test_a_killed_upload_is_reaped_by_gc_only_once_stale(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = tenant.session()
    old = random_bytes(C)
    tenant.write(fs, "f", old)
    # Simulate a process that dies mid-upload: staging happens, the handler's cleanup never runs.
    monkeypatch.setattr(upload, "abort", lambda *a, **k: None)
    with pytest.raises(ConnectionResetError):
        upload.write_stream(
            tenant.db, fs, paths.parse("f"), Broken(random_bytes(50 * C)), content_length=80 * C,
            content_type="x/y", conditions=upload.Preconditions(), policy=tenant.policy,
        )  # fmt: skip
    assert usage(tenant)[1] > C  # staged chunks are stored and referenced by the upload
    fresh = gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0, upload_stale_seconds=3600)
    assert fresh["uploads_reaped"] == 0 and staged_uploads(tenant) > 0  # not stale yet: kept
    reaped = collect(tenant)
    assert reaped["uploads_reaped"] == 1 and reaped["chunks_freed"] >= 32
    assert usage(tenant) == (C, C) and tenant.read(fs, "f") == old


def test_a_reaped_upload_cannot_publish(tenant: Tenant) -> None:
    fs = tenant.session()

    class ReapMidway(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def read(self, n: int = -1) -> bytes:
            if self.sent == 40 * C:  # staging happened: now GC decides the upload is dead
                gc.collect_garbage(tenant.db, budget_seconds=60, grace_seconds=0, upload_stale_seconds=0)
            if self.sent >= 41 * C:
                return b""
            self.sent += C
            return b"\x01" * C

    with pytest.raises(upload.UploadAborted):
        upload.write_stream(
            tenant.db, fs, paths.parse("f"), ReapMidway(), content_length=41 * C,
            content_type="x/y", conditions=upload.Preconditions(), policy=tenant.policy,
        )  # fmt: skip
    collect(tenant)
    assert usage(tenant) == (0, 0)
    with pytest.raises(ApiError):
        tenant.read(fs, "f")


def test_gc_never_frees_a_chunk_a_live_version_references(tenant: Tenant) -> None:
    a, b = tenant.session(), tenant.session()
    shared = random_bytes(4 * C)
    tenant.write(a, "one", shared)
    tenant.write(b, "two", shared + random_bytes(C))  # shares 4 chunks with "one"
    service.delete(tenant.db, a, paths.parse("one"), recursive=False)
    freed = collect(tenant)
    assert freed["chunks_freed"] == 0 and freed["manifests_freed"] == 1
    assert tenant.read(b, "two")[: 4 * C] == shared


def test_publish_survives_commit_unknown_result(tenant: Tenant) -> None:
    fs = tenant.session()
    data = random_bytes(STAGED + 5)
    tenant.db.faults.commit_unknown_after = 0
    # Every transaction of the upload commits, then reports 1021 once: bodies rerun must not double-count.
    original = tenant.db.transact

    def flaky(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        tenant.db.faults.commit_unknown_after = 1
        return original(fn, *args, **kwargs)

    tenant.db.transact = flaky  # type: ignore[method-assign]
    try:
        written = tenant.write(fs, "f", data)
    finally:
        tenant.db.transact = original  # type: ignore[method-assign]
        tenant.db.faults.commit_unknown_after = 0
    assert written.entry.version == 1
    assert tenant.read(fs, "f") == data
    assert usage(tenant) == (len(data), len(data))
    listed, _ = service.list_versions(tenant.db, fs, paths.parse("f"), limit=10, cursor=None)
    assert [v.version for v in listed] == [1]
    service.delete(tenant.db, fs, paths.parse("f"), recursive=False)
    collect(tenant)
    assert usage(tenant) == (0, 0)


def test_chunk_refcounts_match_references_after_mixed_work(tenant: Tenant) -> None:
    a = tenant.session()
    blocks = [random_bytes(C) for _ in range(5)]
    tenant.write(a, "x", b"".join(blocks[:3]))
    tenant.write(a, "y", b"".join(blocks[2:]))
    tenant.write(a, "x", b"".join(blocks[1:4]))
    counts = tenant.db.transact(
        lambda tr: [chunks.chunk_refs(tr, tenant.tenant_id, hashlib.sha256(b).digest()) for b in blocks]
    )
    # manifests: x v1 = 0,1,2; y = 2,3,4; x v2 = 1,2,3
    assert counts == [1, 2, 3, 2, 1]


def test_reading_a_directory_as_a_file_is_409(tenant: Tenant) -> None:
    fs = tenant.session()
    tenant.write(fs, "d/f", b"x")
    with pytest.raises(Conflict) as caught:
        tenant.read(fs, "d")
    assert caught.value.code == "is_a_directory"
    with pytest.raises(Conflict) as put_on_dir:
        tenant.write(fs, "d", b"y")
    assert put_on_dir.value.code == "is_a_directory"
    with pytest.raises(Conflict) as through_file:
        tenant.write(fs, "d/f/g", b"z")
    assert through_file.value.code == "not_a_directory"


def test_sessions_do_not_see_each_other(tenant: Tenant) -> None:
    a, b = tenant.session(), tenant.session()
    tenant.write(a, "secret", b"a's")
    with pytest.raises(ApiError) as caught:
        tenant.read(b, "secret")
    assert caught.value.status == 404
    assert service.list_files(tenant.db, b, paths.ROOT, recursive=True, limit=50, cursor=None) == ([], None)


def _unused(fs: FileSpace) -> None:  # keeps FileSpace imported for type hints in helpers
    del fs


def test_gc_runs_at_batch_priority(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from coditect.store.sqlite import SQLiteTransaction

    batch: list[int] = []
    monkeypatch.setattr(SQLiteTransaction, "set_batch_priority", lambda self: batch.append(id(self)))
    collect(tenant)
    assert batch  # each GC step's transaction yields to user traffic on FoundationDB


def test_staging_stays_within_one_mib_per_transaction_on_foundationdb() -> None:
    class Cluster:
        url = "fdb:///etc/foundationdb/fdb.cluster"

    class Embedded:
        url = "sqlite:///tmp/store.db"

    assert upload.max_group(Cluster()) == 1  # type: ignore[arg-type]
    assert upload.max_group(Embedded()) == upload.MAX_GROUP  # type: ignore[arg-type]
    plan = upload.staging_plan(1600, upload.max_group(Cluster()))  # a 100 MiB body
    assert sum(plan) == 1600 and max(plan) * C <= 1024 * 1024
    assert max(upload.staging_plan(1600)) * C == 4 * 1024 * 1024  # SQLite: fewer, larger
