"""The openapi function serves the registry's document, bare (not enveloped)."""

from __future__ import annotations

from typing import Any

from coditect import registry
from tests.helpers import check_envelope


def test_the_openapi_function_serves_the_bare_document(function_client: Any) -> None:
    client = function_client("openapi")
    response = client.get("/api/v5/openapi.json")
    assert response.status_code == 200 and response.headers["X-Request-Id"]
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0" and "success" not in doc
    assert "/api/v5/health" in doc["paths"] and "/api/v5/openapi.json" in doc["paths"]
    assert len({(p, m) for p, item in doc["paths"].items() for m in item}) == len(registry.routes())
    assert response.headers["Content-Type"] == "application/json"
    check_envelope(client.post("/api/v5/openapi.json"), 405, "method_not_allowed")
