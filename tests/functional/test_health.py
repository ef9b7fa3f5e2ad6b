from __future__ import annotations

from pathlib import Path

from tests.helpers import check_envelope


def test_health_reads_the_store(function_client) -> None:  # type: ignore[no-untyped-def]
    client = function_client("health")
    response = client.get("/api/v5/health")
    data = check_envelope(response, 200)
    assert data == {"service": "coditect-v5-api", "status": "healthy"}


def test_health_is_503_when_the_store_cannot_be_read(function_client, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    client = function_client("health")
    check_envelope(client.get("/api/v5/health"), 200)
    # Overwrite the live store file (same inode) with garbage: every read now fails in SQLite.
    for f in sorted(data_dir.glob("store.db*")):
        size = max(f.stat().st_size, 4096)
        with f.open("r+b") as fh:
            fh.write(b"this is not a database" * (size // 22 + 1))
    response = client.get("/api/v5/health")
    body = response.get_json()
    assert response.status_code == 503
    assert body["data"] == {"service": "coditect-v5-api", "status": "unhealthy"}
    assert body["error"]["code"] == "unhealthy"
    assert "Traceback" not in response.get_data(as_text=True)


def test_request_id_echoed_when_sane_and_replaced_when_not(function_client) -> None:  # type: ignore[no-untyped-def]
    client = function_client("health")
    assert (
        client.get("/api/v5/health", headers={"X-Request-Id": "abc12345-req"}).headers["X-Request-Id"]
        == "abc12345-req"
    )
    rid = client.get("/api/v5/health", headers={"X-Request-Id": "bad id <script>"}).headers["X-Request-Id"]
    assert rid and "<" not in rid and " " not in rid


def test_unknown_path_and_wrong_method(function_client) -> None:  # type: ignore[no-untyped-def]
    client = function_client("health")
    check_envelope(client.get("/api/v5/nope"), 404, "not_found")
    response = client.post("/api/v5/health")
    check_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
