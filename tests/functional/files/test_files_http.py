"""The files functions in-process: the contract's routes, statuses, headers and error codes."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from coditect.files import gc, quota
from tests.functional.files.conftest import Files
from tests.helpers import check_envelope

C = 64 * 1024


def raw_ok(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.headers.get("X-Request-Id")


def test_put_get_head_and_versions(fx: Files) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    data = os.urandom(3 * C + 11)
    created = fx.put(alice, sid, "src/app.py", data)
    info = check_envelope(created, 201)
    assert info["path"] == "src/app.py" and info["type"] == "file" and info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["version"] == 1
    assert info["content_type"] == "text/x-python"
    assert created.headers["ETag"] == f'"{info["etag"]}"'
    updated = check_envelope(fx.put(alice, sid, "src/app.py", b"print(1)\n"), 200)
    assert updated["version"] == 2 and updated["created_at"] == info["created_at"]

    got = fx.get(alice, sid, "src/app.py")
    raw_ok(got, 200)
    assert got.data == b"print(1)\n"
    assert got.headers["ETag"] == f'"{updated["etag"]}"' and got.headers["X-File-Version"] == "2"
    assert got.headers["Content-Length"] == "9" and got.headers["Content-Type"] == "text/x-python"
    old = fx.get(alice, sid, "src/app.py", query_string={"version": 1})
    assert old.data == data and old.headers["X-File-Version"] == "1"
    head = fx.files.head(fx.url(sid, "src/app.py"), headers=alice.headers)
    raw_ok(head, 200)
    assert (
        head.data == b""
        and head.headers["Content-Length"] == "9"
        and head.headers["ETag"] == got.headers["ETag"]
    )
    check_envelope(fx.get(alice, sid, "src/app.py", query_string={"version": 7}), 404, "not_found")
    check_envelope(fx.get(alice, sid, "src/nope.py"), 404, "not_found")

    typed = check_envelope(
        fx.put(alice, sid, "x.bin", b"{}", headers={"Content-Type": "application/json"}), 201
    )
    assert typed["content_type"] == "application/json"

    versions = check_envelope(fx.op(alice, sid, "versions", query_string={"path": "src/app.py"}), 200)
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["next_cursor"] is None
    assert set(versions["items"][0]) == {"version", "size", "sha256", "etag", "created_at"}
    restored = check_envelope(fx.op(alice, sid, "restore", json={"path": "src/app.py", "version": 1}), 200)
    assert restored["version"] == 3 and restored["sha256"] == info["sha256"]
    assert fx.get(alice, sid, "src/app.py").data == data


def test_ranges_conditional_get_and_preconditions(fx: Files) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    data = os.urandom(2 * C + 5)
    etag = check_envelope(fx.put(alice, sid, "f.bin", data), 201)["etag"]
    for spec, (start, stop) in {
        f"bytes=0-{C - 1}": (0, C),
        f"bytes={C - 1}-{C}": (C - 1, C + 1),
        "bytes=-5": (len(data) - 5, len(data)),
        f"bytes={C}-": (C, len(data)),
        f"bytes=0-{10 * C}": (0, len(data)),
    }.items():
        part = fx.get(alice, sid, "f.bin", headers={"Range": spec})
        raw_ok(part, 206)
        assert part.data == data[start:stop]
        assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(data)}"
        assert part.headers["Content-Length"] == str(stop - start)
    bad = fx.get(alice, sid, "f.bin", headers={"Range": f"bytes={len(data)}-"})
    check_envelope(bad, 416, "range_not_satisfiable")
    assert bad.headers["Content-Range"] == f"bytes */{len(data)}"
    assert fx.get(alice, sid, "f.bin", headers={"Range": "bytes=0-1,5-6"}).status_code == 200  # several: all
    not_modified = fx.get(alice, sid, "f.bin", headers={"If-None-Match": f'"{etag}"'})
    raw_ok(not_modified, 304)
    assert not_modified.data == b"" and not_modified.headers["ETag"] == f'"{etag}"'
    assert fx.get(alice, sid, "f.bin", headers={"If-None-Match": '"other"'}).status_code == 200

    check_envelope(
        fx.put(alice, sid, "f.bin", b"x", headers={"If-Match": '"stale"'}), 412, "precondition_failed"
    )
    check_envelope(
        fx.put(alice, sid, "f.bin", b"x", headers={"If-None-Match": "*"}), 412, "precondition_failed"
    )
    # Empty or malformed tags name no version (found by schemathesis: they were a 500).
    for odd in ('W/"ra<N`DCm", "J", ""', 'W/""', '""'):
        check_envelope(
            fx.put(alice, sid, "f.bin", b"x", headers={"If-Match": odd}), 412, "precondition_failed"
        )
    assert fx.get(alice, sid, "f.bin", headers={"If-None-Match": '"a", W/"", ""'}).status_code == 200
    assert fx.get(alice, sid, "f.bin").data == data  # nothing written
    check_envelope(fx.put(alice, sid, "f.bin", b"x", headers={"If-Match": f'"{etag}"'}), 200)
    check_envelope(fx.put(alice, sid, "new.bin", b"x", headers={"If-None-Match": "*"}), 201)
    check_envelope(
        fx.put(alice, sid, "missing.bin", b"x", headers={"If-Match": "*"}), 412, "precondition_failed"
    )


def test_directories_listing_move_delete(fx: Files) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    made = check_envelope(fx.op(alice, sid, "mkdir", json={"path": "empty/inner"}), 201)
    assert made["type"] == "directory" and made["path"] == "empty/inner"
    for p in ("src/a.txt", "src/b.txt", "src/lib/c.txt"):
        check_envelope(fx.put(alice, sid, p, p.encode()), 201)
    check_envelope(fx.get(alice, sid, "src"), 409, "is_a_directory")
    check_envelope(fx.put(alice, sid, "src", b"x"), 409, "is_a_directory")
    check_envelope(fx.put(alice, sid, "src/a.txt/x", b"x"), 409, "not_a_directory")
    top = check_envelope(fx.listing(alice, sid), 200)
    assert [i["path"] for i in top["items"]] == ["empty", "src"]
    first = check_envelope(fx.listing(alice, sid, prefix="src", recursive="true", limit=2), 200)
    rest = check_envelope(
        fx.listing(alice, sid, prefix="src", recursive="true", limit=2, cursor=first["next_cursor"]), 200
    )
    assert [i["path"] for i in first["items"] + rest["items"]] == [
        "src/a.txt",
        "src/b.txt",
        "src/lib",
        "src/lib/c.txt",
    ]
    check_envelope(fx.listing(alice, sid, prefix="nope"), 404, "not_found")
    check_envelope(fx.listing(alice, sid, prefix="../x"), 400, "invalid_path")

    moved = check_envelope(fx.op(alice, sid, "move", json={"from": "src", "to": "app/src"}), 200)
    assert moved["path"] == "app/src" and moved["type"] == "directory"
    assert fx.get(alice, sid, "app/src/lib/c.txt").data == b"src/lib/c.txt"
    check_envelope(
        fx.op(alice, sid, "move", json={"from": "app/src/a.txt", "to": "app/src/b.txt"}),
        409,
        "already_exists",
    )
    check_envelope(
        fx.op(alice, sid, "move", json={"from": "app/src/a.txt", "to": "app/src/b.txt", "overwrite": True}),
        200,
    )
    assert fx.get(alice, sid, "app/src/b.txt").data == b"src/a.txt"
    check_envelope(
        fx.op(alice, sid, "move", json={"from": "x", "to": "y", "extra": 1}), 422, "validation_failed"
    )

    check_envelope(fx.files.delete(fx.url(sid, "app"), headers=alice.headers), 409, "directory_not_empty")
    check_envelope(fx.files.delete(fx.url(sid, "app") + "?recursive=true", headers=alice.headers), 204)
    check_envelope(fx.files.delete(fx.url(sid, "app"), headers=alice.headers), 404, "not_found")
    check_envelope(fx.files.delete(fx.url(sid, "empty/inner"), headers=alice.headers), 204)
    assert [i["path"] for i in check_envelope(fx.listing(alice, sid, recursive="true"), 200)["items"]] == [
        "empty"
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "a/../b",
        "%2e%2e/x",
        "a/%2E%2E/b",
        "%252e%252e/etc",
        "a%2f..%2fb",
        "a\\b",
        "\u2024\u2024/x",
        "a/%00/b",
        "a%01b",
        "a%7Fb",
        "x//y",
    ],
)
def test_bad_paths_are_400_on_every_path_route(fx: Files, raw: str) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    url = fx.url(sid, raw)
    for response in (
        fx.files.put(url, data=b"x", headers=alice.headers),
        fx.files.get(url, headers=alice.headers),
        fx.files.delete(url, headers=alice.headers),
    ):
        check_envelope(response, 400, "invalid_path")
    from urllib.parse import unquote

    decoded = unquote(raw)
    for name, kwargs in (
        ("mkdir", {"json": {"path": decoded}}),
        ("move", {"json": {"from": decoded, "to": "ok"}}),
        ("move", {"json": {"from": "ok", "to": decoded}}),
        ("restore", {"json": {"path": decoded, "version": 1}}),
        ("versions", {"query_string": {"path": decoded}}),
    ):
        check_envelope(fx.op(alice, sid, name, **kwargs), 400, "invalid_path")
    assert check_envelope(fx.listing(alice, sid, recursive="true"), 200)["items"] == []


def test_another_users_or_tenants_session_is_404_on_every_route(fx: Files) -> None:
    alice = fx.accounts.register()
    colleague = fx.accounts.invite(alice)  # same tenant, another user
    stranger = fx.accounts.register()  # another tenant
    sid = fx.session(alice)
    check_envelope(fx.put(alice, sid, "d/f.txt", b"secret"), 201)
    for intruder in (colleague, stranger):
        for sid_ in (sid, str(uuid.uuid4())):
            h = intruder.headers
            url = fx.url(sid_, "d/f.txt")
            answers = [
                fx.files.put(url, data=b"x", headers=h),
                fx.files.get(url, headers=h),
                fx.files.head(url, headers=h),
                fx.files.delete(url, headers=h),
                fx.files.get(fx.url(sid_), headers=h),
                fx.op(intruder, sid_, "move", json={"from": "d/f.txt", "to": "g"}),
                fx.op(intruder, sid_, "mkdir", json={"path": "z"}),
                fx.op(intruder, sid_, "versions", query_string={"path": "d/f.txt"}),
                fx.op(intruder, sid_, "restore", json={"path": "d/f.txt", "version": 1}),
                fx.op(intruder, sid_, "changes"),
            ]
            for response in answers:
                if response.request.method == "HEAD":
                    assert response.status_code == 404
                else:
                    check_envelope(response, 404, "not_found")
    assert fx.get(alice, sid, "d/f.txt").data == b"secret"
    listing = check_envelope(fx.listing(alice, sid, recursive="true"), 200)
    assert [i["path"] for i in listing["items"]] == ["d", "d/f.txt"]


def test_quota_and_size_limits_over_http(fx: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    from coditect.config import get_settings

    monkeypatch.setenv("CODITECT_FILES_QUOTA_BYTES", str(10 * C))
    monkeypatch.setenv("CODITECT_MAX_FILE_SIZE", str(8 * C))
    get_settings.cache_clear()
    alice = fx.accounts.register()
    sid = fx.session(alice)
    check_envelope(fx.put(alice, sid, "a", os.urandom(6 * C)), 201)
    check_envelope(fx.put(alice, sid, "b", os.urandom(5 * C)), 507, "quota_exceeded")
    check_envelope(fx.put(alice, sid, "c", os.urandom(8 * C + 1)), 413, "file_too_large")
    # A chunked body (no Content-Length) is stopped while read: tests/functional/files/test_files_server.py
    tenant = alice.tenant_id
    assert quota.usage(fx.db, tenant).logical_bytes == 6 * C
    names = [i["path"] for i in check_envelope(fx.listing(alice, sid), 200)["items"]]
    assert names == ["a"]
    gc.collect_garbage(fx.db, budget_seconds=30, grace_seconds=0, upload_stale_seconds=0)
    assert quota.usage(fx.db, tenant).physical_bytes == 6 * C


def test_a_one_chunk_body_is_checked_in_its_publish_transaction_alone(
    fx: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body announcing at most one chunk skips the read-before-body transaction (issue 14, hot
    path): the publish transaction refuses it for the same reasons, and nothing is written."""
    from coditect.config import get_settings

    monkeypatch.setenv("CODITECT_FILES_QUOTA_BYTES", str(C + C // 2))
    get_settings.cache_clear()
    alice = fx.accounts.register()
    sid = fx.session(alice)
    db = fx.db
    calls: list[str] = []
    transact = db.transact

    def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", "?"))
        return transact(fn, *args, **kwargs)

    monkeypatch.setattr(db, "transact", counting)
    check_envelope(fx.put(alice, sid, "d/small", os.urandom(C)), 201)
    assert calls.count("_precheck") == 0 and calls.count("_publish") == 1
    calls.clear()
    check_envelope(fx.put(alice, sid, "bigger", os.urandom(C + 1)), 507, "quota_exceeded")
    assert calls.count("_precheck") == 1 and "_publish" not in calls  # refused before the body
    # The same refusals from the publish transaction alone:
    check_envelope(fx.put(alice, sid, "over", os.urandom(C // 2 + 1)), 507, "quota_exceeded")
    check_envelope(fx.put(alice, sid, "d", b"x"), 409)
    check_envelope(
        fx.put(alice, sid, "d/small", b"x", headers={"If-None-Match": "*"}), 412, "precondition_failed"
    )
    assert calls.count("_precheck") == 1
    assert [i["path"] for i in check_envelope(fx.listing(alice, sid), 200)["items"]] == ["d"]
    assert fx.get(alice, sid, "d/small").content_length == C
    assert quota.usage(db, alice.tenant_id).logical_bytes == C


def test_change_feed_over_http_pages_and_long_poll(fx: Files) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    start = check_envelope(fx.op(alice, sid, "changes"), 200)
    assert start["changes"] == [] and start["cursor"]
    for i in range(5):
        fx.put(alice, sid, f"f{i}", b"x")
    page1 = check_envelope(
        fx.op(alice, sid, "changes", query_string={"since": start["cursor"], "limit": 3}), 200
    )
    page2 = check_envelope(
        fx.op(alice, sid, "changes", query_string={"since": page1["cursor"], "limit": 3}), 200
    )
    got = [(c["op"], c["path"]) for c in page1["changes"] + page2["changes"]]
    assert got == [("created", f"f{i}") for i in range(5)]
    assert set(page1["changes"][0]) == {"seq", "path", "op", "etag"}
    idle = check_envelope(
        fx.op(alice, sid, "changes", query_string={"since": page2["cursor"], "wait": 0.2}), 200
    )
    assert idle["changes"] == [] and idle["cursor"] == page2["cursor"]
    check_envelope(fx.op(alice, sid, "changes", query_string={"wait": 31}), 422, "validation_failed")
    check_envelope(fx.op(alice, sid, "changes", query_string={"since": "garbage"}), 400, "invalid_cursor")


def test_fork_shares_content_and_survives_deleting_the_parent(fx: Files) -> None:
    alice = fx.accounts.register()
    parent = fx.session(alice, "parent")
    data = os.urandom(5 * 1024 * 1024)
    check_envelope(fx.put(alice, parent, "big.bin", data), 201)
    check_envelope(fx.put(alice, parent, "src/a.txt", b"parent"), 201)
    sessions = fx.accounts.client("sessions")
    physical = quota.usage(fx.db, alice.tenant_id).physical_bytes
    fork = check_envelope(
        sessions.post(f"/api/v5/sessions/{parent}/fork", json={}, headers=alice.headers), 201
    )
    child = fork["id"]
    assert quota.usage(fx.db, alice.tenant_id).physical_bytes == physical  # metadata only
    check_envelope(fx.put(alice, child, "src/a.txt", b"child"), 200)
    assert fx.get(alice, parent, "src/a.txt").data == b"parent"
    # Dedup across sessions: the same 5 MiB written again in another session adds no bytes.
    other = fx.session(alice, "other")
    check_envelope(fx.put(alice, other, "copy.bin", data), 201)
    assert quota.usage(fx.db, alice.tenant_id).physical_bytes == physical + len(b"child")
    check_envelope(sessions.delete(f"/api/v5/sessions/{parent}", headers=alice.headers), 204)
    from coditect.sessions import purge

    purge.purge_pending(fx.db, budget_seconds=30)
    gc.collect_garbage(fx.db, budget_seconds=30, grace_seconds=0)
    assert hashlib.sha256(fx.get(alice, child, "big.bin").data).digest() == hashlib.sha256(data).digest()
    assert fx.get(alice, child, "src/a.txt").data == b"child"
    check_envelope(fx.get(alice, parent, "big.bin"), 404, "not_found")


def test_an_empty_cursor_is_the_first_page(fx: Any) -> None:
    """Issue 15 item 13: `?cursor=` is the first page of a listing and of the versions."""
    alice = fx.accounts.register()
    sid = fx.session(alice)
    for name in ("a.txt", "b.txt", "c.txt"):
        check_envelope(fx.put(alice, sid, name, b"x"), 201)
    first = check_envelope(fx.listing(alice, sid, limit=2), 200)
    assert check_envelope(fx.listing(alice, sid, limit=2, cursor=""), 200) == first
    versions = {"path": "a.txt", "limit": 5}
    one = check_envelope(fx.op(alice, sid, "versions", query_string=versions), 200)
    assert check_envelope(fx.op(alice, sid, "versions", query_string={**versions, "cursor": ""}), 200) == one


@pytest.mark.parametrize(
    ("name", "content_type", "inline"),
    [
        ("page.html", "text/html", False),
        ("page.html", "text/html; charset=utf-8", False),
        ("logo.svg", "image/svg+xml", False),
        ("doc.xhtml", "application/xhtml+xml", False),
        ("app.js", "text/javascript", False),
        ("paper.pdf", "application/pdf", False),
        ("blob.bin", "application/octet-stream", False),
        ("sneaky.txt", "text/plain, text/html", False),
        ("notes.txt", "text/plain; charset=utf-8", True),
        ("photo.png", "image/png", True),
        ("data.json", "application/json", True),
    ],
)
def test_user_content_is_never_active_inline(fx: Any, name: str, content_type: str, inline: bool) -> None:
    """Issue 15 item 4: attachment unless a passive type, a sandbox CSP and nosniff on every answer."""
    alice = fx.accounts.register()
    sid = fx.session(alice)
    body = b"<html><script>alert(document.cookie)</script></html>"
    created = fx.put(alice, sid, name, body, headers={"Content-Type": content_type})
    check_envelope(created, 201)
    etag = created.headers["ETag"]
    for response in (
        fx.get(alice, sid, name),
        fx.files.head(fx.url(sid, name), headers=alice.headers),
        fx.get(alice, sid, name, headers={"If-None-Match": etag}),
        fx.get(alice, sid, name, headers={"Range": "bytes=0-3"}),
    ):
        assert response.status_code in (200, 206, 304)
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("inline" if inline else "attachment"), disposition
        assert f'filename="{name}"' in disposition
        csp = response.headers["Content-Security-Policy"]
        assert csp.startswith("sandbox") and "default-src 'none'" in csp and "script-src" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_attachment_names_cannot_break_the_header(fx: Any) -> None:
    alice = fx.accounts.register()
    sid = fx.session(alice)
    name = 'a"b;c\u00e9\u4e2d.html'
    check_envelope(fx.put(alice, sid, quote(name), b"x", headers={"Content-Type": "text/html"}), 201)
    disposition = fx.get(alice, sid, quote(name)).headers["Content-Disposition"]
    assert disposition == (
        "attachment; filename=\"a_b;c__.html\"; filename*=UTF-8''a%22b%3Bc%C3%A9%E4%B8%AD.html"
    )
