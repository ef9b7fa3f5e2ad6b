"""Issue 15 item 15, on a real 8 MiB file system: the store's disk fills up.

Writes answer 507 `insufficient_storage` with Retry-After (never 500), token refresh too; health
says the store is unwritable; reads keep working; DELETE still works (the reserve), so space can
be freed through the API.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from coditect.config import get_settings
from tests.helpers import check_envelope
from tests.plugins.small_disk import fill


@pytest.fixture
def full_disk_env(accounts: Any, small_disk: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    disk = small_disk("8m")
    monkeypatch.setenv("CODITECT_STORE", f"sqlite://{disk}/store.db")
    monkeypatch.setenv("CODITECT_STORE_RESERVE_BYTES", str(1024 * 1024))
    get_settings.cache_clear()
    return disk


def no_500(response: Any) -> Any:
    assert response.status_code < 500 or response.status_code in (503, 507), response.get_data(as_text=True)
    return response


def test_a_full_disk_answers_507_keeps_reads_and_deletes(accounts: Any, full_disk_env: Any) -> None:
    disk = full_disk_env
    alice = accounts.register()
    files, sessions = accounts.client("files"), accounts.client("sessions")
    sid = check_envelope(sessions.post("/api/v5/sessions", json={"name": "s"}, headers=alice.headers), 201)[
        "id"
    ]
    assert (disk / "store.reserve").stat().st_size == 1024 * 1024
    (disk / "other-files").write_bytes(b"\0" * (2 * 1024 * 1024))  # someone else on the volume
    url = f"/api/v5/sessions/{sid}/files"
    written: list[str] = []
    refused = None
    for i in range(64):  # 64 x 256 KiB of incompressible data is twice the disk
        response = no_500(files.put(f"{url}/f{i}.bin", data=os.urandom(256 * 1024), headers=alice.headers))
        if response.status_code != 201:
            refused = response
            break
        written.append(f"f{i}.bin")
    assert refused is not None and written
    check_envelope(refused, 507, "insufficient_storage")
    assert int(refused.headers["Retry-After"]) > 0
    # Fill what is left outside the store too: the next commit meets ENOSPC itself.
    fill(disk)
    for response in (
        sessions.post("/api/v5/sessions", json={"name": "more"}, headers=alice.headers),
        accounts.client("refresh").post("/api/v5/auth/refresh", json={"refresh_token": alice.refresh_token}),
        files.put(f"{url}/late.bin", data=b"x" * 1000, headers=alice.headers),
    ):
        check_envelope(no_500(response), 507, "insufficient_storage")
    health = accounts.client("health").get("/api/v5/health")
    assert health.status_code == 503
    body = health.get_json()
    assert body["data"] == {"service": "coditect-v5-api", "status": "unhealthy", "store": "unwritable"}
    assert body["error"]["code"] == "store_unwritable"
    # Reads still work.
    assert files.get(f"{url}/{written[0]}", headers=alice.headers).status_code == 200
    check_envelope(sessions.get(f"/api/v5/sessions/{sid}", headers=alice.headers), 200)
    # Deletes still work: the reserve was released for them.
    for name in written[:3]:
        check_envelope(no_500(files.delete(f"{url}/{name}", headers=alice.headers)), 204)
    assert not (disk / "store.reserve").exists()
    # Space comes back (the other files go): writes work again.
    (disk / "filler").unlink()
    (disk / "other-files").unlink()
    time.sleep(1.1)  # the space guard re-reads free space at most once a second
    check_envelope(sessions.post("/api/v5/sessions", json={"name": "after"}, headers=alice.headers), 201)
