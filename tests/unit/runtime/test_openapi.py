"""The OpenAPI document covers every route of every function in the registry, and is valid 3.1."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict, Field

from coditect import registry
from coditect.platform import openapi
from coditect.registry.spec import FunctionSpec, Route


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    tags: list[str] = []
    note: str = Field(default=None, min_length=1)  # type: ignore[assignment]  # omit, never null


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = ""
    recursive: bool = False
    path: str


class Out(BaseModel):
    id: str
    name: str


def expected_path(rule: str) -> str:
    """The rule with each parameter named as the document names it (by resource)."""
    names = {"sessions": "session_id", "conversations": "conversation_id", "workspaces": "workspace_id"}
    names |= {"users": "user_id", "auth-sessions": "auth_session_id", "files": "path"}
    out, previous = [], ""
    for segment in rule.split("/"):
        m = re.fullmatch(r"<(?:[^:>]+:)?([^>]+)>", segment)
        out.append("{" + names.get(previous, m.group(1)) + "}" if m else segment)
        previous = segment.split(":", 1)[0] if not m else previous
    return "/".join(out)


@pytest.mark.slow
def test_every_route_of_every_function_is_documented_and_the_document_is_valid() -> None:
    doc = openapi.build(registry.FUNCTIONS)
    validate(doc)
    for spec, route in registry.routes():
        path = expected_path(route.path)
        assert path in doc["paths"], f"{spec.name}: {route.path} missing as {path}"
        assert route.method.lower() in doc["paths"][path], f"{route.method} {path} missing"
        op = doc["paths"][path][route.method.lower()]
        assert op["operationId"] == route.name and op["x-coditect-function"] == spec.name
        assert ("security" in op) and (op["security"] == [] if route.auth == "none" else [{"bearerAuth": []}])
        if route.auth != "none":
            assert "401" in op["responses"]
        if route.auth == "admin":
            assert "403" in op["responses"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_converters_and_parameters() -> None:
    # Parameters are named by the resource they index, whatever the rule calls them.
    assert (
        openapi.openapi_path("/api/v5/sessions/<uuid:sid>/files/<path:path>")
        == "/api/v5/sessions/{session_id}/files/{path}"
    )
    assert openapi.openapi_path("/api/v5/sessions/<uuid:id>/fork") == "/api/v5/sessions/{session_id}/fork"
    assert (
        openapi.openapi_path("/api/v5/sessions/<uuid:sid>/files:move")
        == "/api/v5/sessions/{session_id}/files:move"
    )
    assert openapi.openapi_path("/api/v5/settings/<key>") == "/api/v5/settings/{key}"
    key = openapi.path_parameters("/api/v5/settings/<key>")[0]["schema"]
    assert key["pattern"] == "^[a-z0-9._-]{1,128}$" and key["maxLength"] == 128
    params = openapi.path_parameters("/a/<uuid:id>/<path:rest>/<int(min=1):n>")
    assert [(p["name"], p["schema"]) for p in params] == [
        ("id", {"type": "string", "format": "uuid"}),
        ("rest", {"type": "string"}),
        ("n", {"type": "integer"}),
    ]
    assert all(p["in"] == "path" and p["required"] for p in params)


SPECS = (
    FunctionSpec(
        name="things",
        description="Test function.",
        routes=(
            Route(
                "things.create",
                "POST",
                "/api/v5/things",
                status=201,
                body=f"{__name__}:Body",
                response=f"{__name__}:Out",
                errors=((409, "thing_taken"),),
            ),
            Route("things.list", "GET", "/api/v5/things", paged=True, response=f"{__name__}:Out"),
            Route(
                "things.files",
                "GET",
                "/api/v5/things/<uuid:id>/files",
                query=f"{__name__}:Filter",
                auth="admin",
                response=f"{__name__}:Out",
                paged=True,
            ),
            Route("things.delete", "DELETE", "/api/v5/things/<uuid:id>", status=204),
            Route("things.raw", "GET", "/api/v5/things/<uuid:id>/raw/<path:path>", enveloped=False),
            Route("things.put", "PUT", "/api/v5/things/<uuid:id>/raw/<path:path>", raw_body=True),
        ),
    ),
)


def test_envelopes_errors_bodies_and_queries() -> None:
    doc = openapi.build(SPECS)
    validate(doc)
    paths = doc["paths"]
    create = paths["/api/v5/things"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Body"
    }
    ok = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert ok["properties"]["data"] == {"$ref": "#/components/schemas/Out"} and ok["properties"][
        "success"
    ] == {"const": True}
    note = doc["components"]["schemas"]["Body"]["properties"]["note"]
    assert "default" not in note and note["type"] == "string"
    assert set(create["responses"]) == {
        "201",
        "400",
        "401",
        "405",
        "408",
        "409",
        "413",
        "415",
        "422",
        "429",
        "500",
        "507",
    }
    assert "insufficient_storage" in create["responses"]["507"]["description"]  # every write: a full disk
    assert "507" not in paths["/api/v5/things"]["get"]["responses"]
    assert "thing_taken" in create["responses"]["409"]["description"]
    assert create["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    listed = paths["/api/v5/things"]["get"]
    data = listed["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data["properties"]["items"] == {"type": "array", "items": {"$ref": "#/components/schemas/Out"}}
    assert {p["name"] for p in listed["parameters"]} == {"limit", "cursor"}
    files = paths["/api/v5/things/{id}/files"]["get"]  # "things" is no known resource: names kept
    query = {p["name"]: p for p in files["parameters"] if p["in"] == "query"}
    assert (
        set(query) == {"prefix", "recursive", "path"}
        and query["path"]["required"]
        and not query["prefix"]["required"]
    )
    assert {"401", "403", "404", "422"} <= set(files["responses"])
    deleted = paths["/api/v5/things/{id}"]["delete"]["responses"]["204"]
    assert "content" not in deleted
    raw = paths["/api/v5/things/{id}/raw/{path}"]
    assert raw["get"]["responses"]["200"]["content"] == {"application/json": {"schema": {"type": "object"}}}
    assert "application/octet-stream" in raw["put"]["requestBody"]["content"]
    assert "413" not in raw["put"]["responses"]  # the handler owns its raw-body limits (route.errors)


def test_two_routes_on_the_same_method_and_path_are_refused() -> None:
    clash = FunctionSpec(name="clash", routes=(Route("clash.get", "GET", "/api/v5/things"),))
    with pytest.raises(ValueError, match="two routes answer GET"):
        openapi.build((*SPECS, clash))


def test_every_paged_route_documents_invalid_cursor() -> None:
    # Derived from `paged`, not declared per route: a paged route that forgot it is still right.
    for _spec, route in registry.routes():
        answers = openapi.error_answers(route)
        assert ("invalid_cursor" in answers.get(400, [])) == route.paged or route.name in {
            "files.changes",
            "sessions.related",
        }, route.name


def test_idempotent_routes_document_the_header_and_its_errors() -> None:
    """Issue 15 item 17: Idempotency-Key in the document (parameter + 422 code)."""
    from coditect import registry

    doc = openapi.build(registry.FUNCTIONS)
    validate(doc)
    assert doc["components"]["parameters"]["Idempotency-Key"]["in"] == "header"
    for path in (
        "/api/v5/sessions",
        "/api/v5/sessions/{session_id}/conversations",
        "/api/v5/conversations/{conversation_id}/messages",
    ):
        op = doc["paths"][path]["post"]
        assert {"$ref": "#/components/parameters/Idempotency-Key"} in op["parameters"], path
        assert "idempotency_key_reused" in op["responses"]["422"]["description"]
