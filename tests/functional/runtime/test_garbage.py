"""Garbage to every route of every HTTP function in the registry, driven in-process.

Whatever arrives, no answer is a 500 and every error carries the contract's envelope. Malformed
JSON → 400 invalid_json, another content type → 415, an oversized body → 413, unknown fields →
422 with loc/type only, a wrong method → 405 with Allow, a non-UUID id → 404, and a protected
route called without a token → 401 with WWW-Authenticate. Bodies of protected routes are
exercised with a real access token when the register function can issue one.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from coditect import registry
from coditect.registry.spec import FunctionSpec, Route
from tests.helpers import check_envelope

ROOT = Path(__file__).resolve().parents[3]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
GARBAGE = b"\x8f\x00{garbage\xff"
# JSON the decoder used to accept or crash on (a 5000-digit integer was a 500).
HOSTILE_JSON = (
    b'{"name": ' + b"9" * 5000 + b"}",
    b'{"name": NaN}',
    b'{"name": 1e999}',
    b'{"name": "a", "name": "b"}',
    b'{"name": "\\udc00"}',
    b"[" * 50_000 + b"]" * 50_000,
)


def http_functions() -> list[FunctionSpec]:
    return [s for s in registry.FUNCTIONS if s.kind == "http" and (ROOT / s.source).exists()]


def fill(rule: str, uuid_value: str | None = None) -> str:
    def one(m: re.Match[str]) -> str:
        conv = m.group(1) or ""
        if conv.startswith("uuid"):
            return uuid_value or str(uuid.uuid4())
        return "dir/file.txt" if conv.startswith("path") else "somekey"

    return re.sub(r"<(?:([^:>]+):)?[^>]+>", one, rule)


def expect(response: Any, status: int, code: str | None = None) -> Any:
    """check_envelope, except for HEAD answers, which carry the status and headers but no body."""
    if response.request.method == "HEAD":
        assert response.status_code == status and response.headers.get("X-Request-Id")
        assert response.get_data() == b""
        return None
    return check_envelope(response, status, code)


def no_500(response: Any, route: Route | None = None) -> Any:
    assert response.status_code < 500, (route and route.name, response.status_code, response.get_data()[:300])
    if response.request.method == "HEAD":
        return expect(response, response.status_code)
    if response.status_code >= 400 or (route is not None and route.enveloped and response.status_code != 204):
        return check_envelope(response, response.status_code)
    assert response.headers.get("X-Request-Id")
    return None


@pytest.mark.parametrize("spec", http_functions(), ids=lambda s: s.name)
def test_garbage_never_yields_a_500(
    spec: FunctionSpec, function_client: Any, request: pytest.FixtureRequest
) -> None:
    protected = [r for r in spec.routes if r.auth != "none"]
    request.getfixturevalue("identity_env")  # a key directory, as the signing functions need
    # A real owner's access token, registered through functions/register (tests/plugins/identity.py)
    # with a key directory in the test's data dir, as functions find it in production.
    token = str(request.getfixturevalue("accounts").register().access_token) if protected else None
    client = function_client(spec.name)
    served: dict[str, set[str]] = {}
    for route in spec.routes:
        served.setdefault(route.path, set()).add(route.method)

    for route in spec.routes:
        path = fill(route.path)
        if route.auth != "none":
            for headers in (
                {},
                {"Authorization": "Bearer not-a-token"},
                {"Authorization": "Basic Zm9vOmJhcg=="},
            ):
                response = client.open(
                    path, method=route.method, headers=headers, data=GARBAGE, content_type="application/json"
                )
                expect(response, 401)
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), route.name
        auth = {"Authorization": f"Bearer {token}"} if token else {}

        def call(_auth: Any = auth, _path: str = path, _method: str = route.method, **kwargs: Any) -> Any:
            headers = {**_auth, **kwargs.pop("headers", {})}
            return client.open(kwargs.pop("path", _path), method=_method, headers=headers, **kwargs)

        if route.body:
            limit = route.max_body or 1024 * 1024
            check_envelope(call(data=b'{"a": ', content_type="application/json"), 400, "invalid_json")
            check_envelope(call(data=GARBAGE, content_type="application/json"), 400, "invalid_json")
            for hostile in HOSTILE_JSON:
                check_envelope(call(data=hostile, content_type="application/json"), 400, "invalid_json")
            check_envelope(call(data=b"a=b", content_type="text/plain"), 415, "unsupported_media_type")
            check_envelope(call(data=b"<x/>", content_type="application/xml"), 415, "unsupported_media_type")
            check_envelope(
                call(data=b" " * (limit + 1), content_type="application/json"), 413, "payload_too_large"
            )
            error = check_envelope(
                call(json={"zz_unknown_field": "secret-value-x"}), 422, "validation_failed"
            )
            assert all(set(d) == {"loc", "type"} for d in error["details"]), error
            assert {"loc": ["body", "zz_unknown_field"], "type": "extra_forbidden"} in error["details"]
            assert "secret-value-x" not in str(error)
            for weird in ([], "string", 12, None, {"a": {"b": [1, 2, {"c": None}]}}, [{}] * 50):
                no_500(call(json=weird), route)
        else:
            no_500(call(data=GARBAGE, content_type="application/octet-stream"), route)
        # huge query values, repeated parameters, odd characters
        query = "limit=" + "9" * 5000 + "&cursor=" + "A" * 8000 + "&limit=-1&prefix=%00%ff&zz=" + "x" * 4000
        no_500(call(path=f"{path}?{query}", data=b""), route)
        no_500(call(path=f"{path}?cursor=%%%&limit=abc&recursive=maybe&since=never&wait=99999"), route)
        if "<uuid:" in route.path:
            expect(call(path=fill(route.path, "not-a-uuid")), 404, "not_found")
            expect(call(path=fill(route.path, "../../etc/passwd")), 404)
            no_500(call(path=fill(route.path, str(uuid.UUID(int=0)))), route)

    for rule, methods in served.items():
        path = fill(rule)
        for method in sorted(set(METHODS) - methods - ({"HEAD"} if "GET" in methods else set())):
            response = client.open(path, method=method)
            check_envelope(response, 405, "method_not_allowed")
            assert set(response.headers["Allow"].replace(" ", "").split(",")) >= methods, (rule, method)


def test_every_http_function_of_the_registry_is_exercised() -> None:
    """The garbage test covers each HTTP function whose source exists; say which are missing."""
    names = {s.name for s in http_functions()}
    assert {"health", "openapi"} <= names
    missing = [s.name for s in registry.FUNCTIONS if s.kind == "http" and s.name not in names]
    if missing:
        pytest.skip(f"declared in the registry but functions/<name>/main.py not written yet: {missing}")
