"""The FunctionApp pipeline on a test function of its own: body limits, content types, JSON and
validation errors, unknown exceptions, request ids, CORS, security headers and the JSON log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from pydantic import BaseModel, ConfigDict

from coditect import registry
from coditect.config import Settings
from coditect.http import Call, FunctionApp, logs
from coditect.registry.spec import FunctionSpec, Route
from tests.helpers import check_envelope

logs.configure("runtime-tests")  # before caplog installs its handler: later calls are no-ops

SECRET_TOKEN = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXBheWxvYWQtdmFsdWU.c2lnbmF0dXJlLXZhbHVl"
BODY_SECRET = "body-secret-value-1234"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = 0


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = 50


SPEC = FunctionSpec(
    name="runtime-test",
    routes=(
        Route("rt.create", "POST", "/api/v5/items", auth="none", status=201, body=f"{__name__}:Item"),
        Route("rt.get", "GET", "/api/v5/items/<uuid:id>", auth="none"),
        Route("rt.list", "GET", "/api/v5/items", auth="none", query=f"{__name__}:Query"),
        Route("rt.boom", "GET", "/api/v5/boom", auth="none"),
        Route("rt.delete", "DELETE", "/api/v5/items/<uuid:id>", auth="none", status=204),
    ),
)


@pytest.fixture
def client(data_dir: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(registry, "FUNCTIONS", (*registry.FUNCTIONS, SPEC))
    settings = Settings(cors_origins=("https://ide.example",), max_json_body=1024)
    app = FunctionApp("runtime-test", settings=settings)
    seen: dict[str, Any] = {}

    @app.route("rt.create")
    def create(call: Call) -> dict[str, Any]:
        seen["read"] = True
        return {"name": call.body.name}

    @app.route("rt.get")
    def get(call: Call) -> dict[str, str]:
        return {"id": call.params["id"]}

    @app.route("rt.list")
    def list_(call: Call) -> dict[str, Any]:
        return {"items": [], "next_cursor": None, "limit": call.query.limit}

    @app.route("rt.boom")
    def boom(call: Call) -> None:
        raise RuntimeError("database password is hunter2")

    @app.route("rt.delete")
    def delete(call: Call) -> None:
        return None

    flask_app = Flask("runtime-test")
    flask_app.add_url_rule(
        "/<path:path>",
        "run",
        lambda path: app.serve(request),
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
    )
    test_client = flask_app.test_client()
    test_client.seen = seen  # type: ignore[attr-defined]
    yield test_client


def test_success_envelope_status_and_security_headers(client: Any) -> None:
    data = check_envelope(client.post("/api/v5/items", json={"name": "a"}), 201)
    assert data == {"name": "a"}
    response = client.delete("/api/v5/items/6f1c3c59-34a4-4d0b-a8f8-e9e3d3a7e1c1")
    check_envelope(response, 204)
    assert response.headers["Cache-Control"] == "no-store"


def test_body_limit_is_checked_before_the_handler_reads(client: Any) -> None:
    big = json.dumps({"name": "x" * 2000})
    check_envelope(
        client.post("/api/v5/items", data=big, content_type="application/json"), 413, "payload_too_large"
    )
    assert "read" not in client.seen

    # A body announcing more than the limit is refused without reading it: a stream that would
    # fail when read proves it was never touched.
    class Exploding(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

        readline = read

    response = client.post(
        "/api/v5/items",
        input_stream=Exploding(b"{" * 5000),
        headers={"Content-Type": "application/json", "Content-Length": "5000"},
    )
    check_envelope(response, 413, "payload_too_large")


def test_wrong_content_type_is_415_and_malformed_json_is_400(client: Any) -> None:
    check_envelope(
        client.post("/api/v5/items", data="name=a", content_type="text/plain"), 415, "unsupported_media_type"
    )
    check_envelope(
        client.post("/api/v5/items", data='{"name": ', content_type="application/json"), 400, "invalid_json"
    )
    check_envelope(
        client.post("/api/v5/items", data=b"\xff\xfe\x00", content_type="application/json"),
        400,
        "invalid_json",
    )


def test_validation_details_have_only_loc_and_type(client: Any) -> None:
    response = client.post("/api/v5/items", json={"name": 7, "size": "big", "role": BODY_SECRET})
    error = check_envelope(response, 422, "validation_failed")
    assert error["details"] and all(set(d) == {"loc", "type"} for d in error["details"])
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("body", "name"),
        ("body", "size"),
        ("body", "role"),
    }
    assert BODY_SECRET not in response.get_data(as_text=True)
    error = check_envelope(client.get("/api/v5/items?limit=lots"), 422, "validation_failed")
    assert error["details"] == [{"loc": ["query", "limit"], "type": "int_parsing"}]


def test_unknown_exception_is_a_generic_500_and_only_the_log_has_the_text(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = client.get("/api/v5/boom")
    error = check_envelope(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert (
        "hunter2" not in text and "RuntimeError" not in text and error["message"] == "Internal server error."
    )
    lines = [logs.JsonFormatter("runtime-test").format(r) for r in caplog.records]
    assert any("hunter2" in line and "RuntimeError" in line for line in lines)


def test_request_id_is_echoed_only_when_sane(client: Any) -> None:
    assert (
        client.get("/api/v5/items", headers={"X-Request-Id": "req-12345678"}).headers["X-Request-Id"]
        == "req-12345678"
    )
    for bad in ("short", "has space 12345", "x" * 200, "<script>alert(1)</script>"):
        rid = client.get("/api/v5/items", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert rid != bad and len(rid) == 32
    error = check_envelope(client.get("/api/v5/nowhere", headers={"X-Request-Id": "req-abcdefgh"}), 404)
    assert error["code"] == "not_found"


def test_unknown_paths_non_uuid_ids_and_wrong_methods(client: Any) -> None:
    check_envelope(client.get("/api/v5/items/not-a-uuid"), 404, "not_found")
    response = client.put("/api/v5/items")
    check_envelope(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_cors_allowlist_and_preflight(client: Any) -> None:
    allowed = client.get("/api/v5/items", headers={"Origin": "https://ide.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ide.example"
    assert "Origin" in allowed.headers.get_all("Vary")
    other = client.get("/api/v5/items", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(
        "/api/v5/items", headers={"Origin": "https://ide.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    refused = client.options(
        "/api/v5/items", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Methods" not in refused.headers
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_log_line_is_json_with_the_request_fields_and_no_secret_or_body(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.post(
        "/api/v5/items?token=" + SECRET_TOKEN,
        json={"name": BODY_SECRET},
        headers={"Authorization": f"Bearer {SECRET_TOKEN}", "X-Request-Id": "req-logline1"},
    )
    client.post(
        "/api/v5/items",
        json={"name": 1, "size": BODY_SECRET},
        headers={"Authorization": "Bearer abc.def.ghi"},
    )
    request_lines = [
        json.loads(logs.JsonFormatter("runtime-test").format(r))
        for r in caplog.records
        if r.getMessage() == "request"
    ]
    assert len(request_lines) == 2
    first = request_lines[0]
    assert first["request_id"] == "req-logline1" and first["function"] == "runtime-test"
    assert first["route"] == "rt.create" and first["status"] == 201 and first["method"] == "POST"
    assert isinstance(first["latency_ms"], float)
    everything = "\n".join(logs.JsonFormatter("runtime-test").format(r) for r in caplog.records)
    for secret in (SECRET_TOKEN, BODY_SECRET, "abc.def.ghi"):
        assert secret not in everything


def test_readiness_and_metrics_are_answered_before_routing(client: Any) -> None:
    ready = client.get("/healthz")
    assert ready.status_code == 200 and ready.get_data() == b"ok\n"
    client.get("/api/v5/items")
    client.get("/api/v5/items/nope")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.content_type.startswith("text/plain")
    text = metrics.get_data(as_text=True)
    assert (
        'coditect_http_requests_total{function="runtime-test",method="GET",route="rt.list",status="200"}'
        in text
    )
    assert 'route="unmatched",status="404"' in text
    assert (
        'coditect_http_request_duration_seconds_bucket{function="runtime-test",le="0.005",method="GET",route="rt.list"}'
        in text
    )
    assert "nope" not in text  # raw paths never become labels
    check_envelope(client.post("/metrics"), 404, "not_found")  # only GET/HEAD are answered there


def test_a_route_declared_without_a_handler_fails_at_import(
    data_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "FUNCTIONS", (*registry.FUNCTIONS, SPEC))
    app = FunctionApp("runtime-test", settings=Settings())

    @app.route("rt.get")
    def get(call: Call) -> None:
        return None

    # `handle = app.entrypoint()` ends every function module: the import fails there, naming
    # the routes left without a handler, instead of answering 404 after authentication.
    with pytest.raises(LookupError, match=r"rt\.boom.*rt\.create.*rt\.delete.*rt\.list"):
        app.entrypoint()


def test_a_bad_store_url_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "FUNCTIONS", (*registry.FUNCTIONS, SPEC))
    with pytest.raises(ValueError, match="unknown store URL scheme 'redis'"):
        FunctionApp("runtime-test", settings=Settings(store="redis://cache:6379"))


def test_an_unknown_coditect_variable_is_warned_about_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from coditect.config import get_settings, unknown_variables

    monkeypatch.setenv("CODITECT_ACCES_TOKEN_TTL", "60")  # a typo of ACCESS
    monkeypatch.setenv("CODITECT_DEVSTACK_EXTRA", "x.py")  # the dev stack's own
    get_settings.cache_clear()
    with caplog.at_level(logging.WARNING, logger="coditect.config"):
        settings = get_settings()
    get_settings.cache_clear()
    assert settings.access_token_ttl == 900  # ignored, not applied
    warned = [r.getMessage() for r in caplog.records if r.name == "coditect.config"]
    assert warned == [
        "unknown setting CODITECT_ACCES_TOKEN_TTL is ignored (the settings are coditect.config.Settings)"
    ]
    assert unknown_variables(["CODITECT_STORE", "K_SINK", "CODITECT_SINK", "coditect_x", "PATH"]) == [
        "CODITECT_SINK",
        "coditect_x",
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": ' + b"9" * 5000 + b"}",  # beyond Python's integer-digit limit (was a 500)
        b'{"name": "a", "size": ' + b"9" * 100 + b"}",  # beyond any integer we accept
        b'{"name": "a", "size": 1e999}',  # float overflow → inf
        b'{"name": "a", "size": NaN}',
        b'{"name": "a", "size": Infinity}',
        b'{"name": "a", "size": -Infinity}',
        b'{"name": "a", "name": "b"}',  # duplicate keys
        b'{"name": {"x": 1, "x": 2}}',  # duplicate keys, nested
        b'{"name": "\xc3\x28"}',  # invalid UTF-8
        b'{"name": "\\ud800"}',  # a lone surrogate escape
        b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deeper than the recursion limit
    ],
)
def test_hostile_json_is_invalid_json_never_500(raw: bytes) -> None:
    from coditect.errors import BadRequest
    from coditect.http import body as body_module

    with pytest.raises(BadRequest) as caught:
        body_module.loads(raw)
    assert caught.value.code == "invalid_json"


def test_strict_json_still_reads_what_clients_send() -> None:
    from coditect.http import body as body_module

    raw = b'{"name": "\\ud83d\\ude00 caf\xc3\xa9", "size": -12, "ratio": 0.5, "big": 1e300, "n": null}'
    assert body_module.loads(raw) == {
        "name": "\U0001f600 caf\u00e9",
        "size": -12,
        "ratio": 0.5,
        "big": 1e300,
        "n": None,
    }


def test_every_answer_refuses_framing(client: Any) -> None:
    """Issue 15 item 5: API answers (success, error, raw) carry X-Frame-Options and frame-ancestors."""
    for response in (
        client.post("/api/v5/items", json={"name": "a"}),
        client.get("/api/v5/boom"),
        client.get("/api/v5/nowhere"),
        client.delete("/api/v5/items/6f1c3c59-34a4-4d0b-a8f8-e9e3d3a7e1c1"),
    ):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_plain_log_files_redact_secrets(tmp_path: Any) -> None:
    """Issue 15 item 6: the local stack's plain-text logs (uvicorn's access lines of the gateway,
    the broker, the scheduler) mask tickets, tokens and bearer credentials like the JSON logs."""
    from coditect.devstack.servers import log_to_file

    path = tmp_path / "gateway.log"
    log_to_file(path, "test.redaction.access")
    logger = logging.getLogger("test.redaction.access")
    ticket = "wst_" + "T" * 43
    logger.info(
        '%s - "%s %s HTTP/1.1" %d', "127.0.0.1:5555", "GET", f"/workspaces/w/?a=1&ticket={ticket}", 303
    )
    logger.info("upstream said Authorization: Bearer %s", SECRET_TOKEN)
    logger.info("refresh with token=%s", "crt_" + "R" * 43)
    for handler in logger.handlers:
        handler.flush()
    text = path.read_text()
    assert ticket not in text and SECRET_TOKEN not in text and "R" * 43 not in text
    assert "ticket=[redacted]" in text and "/workspaces/w/?a=1" in text
