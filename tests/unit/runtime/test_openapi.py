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
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


@pytest.mark.slow
def test_every_route_of_every_function_is_documented_and_the_document_is_valid() -> None:
    doc = openapi.build(registry.FUNCTIONS)
    validate(doc)
    for spec, route in registry.routes():
        path = expected_path(route.path)
        assert path in doc["paths"], f"{spec.name}: {route.path} missing as {path}"
        assert route.method.lower() in doc["paths"][path], f"{route.method} {path} missing"
        op = doc["paths"][path][route.method.lower()]
        assert op["operationId"] == route.name and op["tags"] == [spec.name]
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
    assert (
        openapi.openapi_path("/api/v5/sessions/<uuid:sid>/files/<path:path>")
        == "/api/v5/sessions/{sid}/files/{path}"
    )
    assert (
        openapi.openapi_path("/api/v5/sessions/<uuid:sid>/files:move") == "/api/v5/sessions/{sid}/files:move"
    )
    assert openapi.openapi_path("/api/v5/settings/<key>") == "/api/v5/settings/{key}"
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
    assert set(create["responses"]) == {"201", "400", "401", "405", "409", "413", "415", "422", "429", "500"}
    assert "thing_taken" in create["responses"]["409"]["description"]
    assert create["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    listed = paths["/api/v5/things"]["get"]
    data = listed["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
    assert data["properties"]["items"] == {"type": "array", "items": {"$ref": "#/components/schemas/Out"}}
    assert {p["name"] for p in listed["parameters"]} == {"limit", "cursor"}
    files = paths["/api/v5/things/{id}/files"]["get"]
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
    assert "*/*" in raw["get"]["responses"]["200"]["content"]
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
