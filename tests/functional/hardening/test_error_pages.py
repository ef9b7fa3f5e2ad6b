"""Issue 15 item 3 (functions part): paths functions-framework's own Flask routing does not match
(a `%0A` in a path parameter, /robots.txt, /favicon.ico) are answered by our pipeline: the JSON
error envelope with X-Request-Id, never Flask's HTML 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import check_envelope


@pytest.mark.parametrize(
    "path",
    [
        "/api/v5/settings/a%0Ab",
        "/api/v5/settings/%0A",
        "/api/v5/settings/a%0Db%0A",
        "/robots.txt",
        "/favicon.ico",
        "/api/v5/%0A/x",
    ],
)
def test_unroutable_paths_get_the_json_envelope(function_client: Any, identity_env: Any, path: str) -> None:
    client = function_client("settings")
    response = client.get(path, headers={"X-Request-Id": "probe-request-0001"})
    assert response.status_code in (401, 404), response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert "<html" not in response.get_data(as_text=True).lower()
    check_envelope(response, response.status_code)
    assert response.headers["X-Request-Id"] == "probe-request-0001"
