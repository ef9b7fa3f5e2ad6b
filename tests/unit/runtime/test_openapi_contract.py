"""The OpenAPI document describes what the server does, so that generated clients work unaided:
headers, every status, binary media, the contract's limits, examples, resources, links."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from coditect import registry
from coditect.platform import openapi
from coditect.registry.spec import FunctionSpec, Route

DOC = openapi.build(registry.FUNCTIONS)
FILE = "/api/v5/sessions/{session_id}/files/{path}"


def op(path: str, method: str) -> dict[str, Any]:
    return DOC["paths"][path][method]


def header_refs(answer: dict[str, Any]) -> set[str]:
    return set(answer.get("headers", {}))


def param_refs(operation: dict[str, Any]) -> set[str]:
    return {p["$ref"].rsplit("/", 1)[-1] for p in operation.get("parameters", []) if "$ref" in p}


def validator(component: str) -> Draft202012Validator:
    """A validator of one component schema, its `$ref`s resolved in the document."""
    resource = Resource.from_contents(DOC, default_specification=DRAFT202012)
    schema = {"$ref": f"urn:doc#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=Registry().with_resource("urn:doc", resource))


def test_every_schema_has_an_example_that_its_schema_accepts() -> None:
    schemas = DOC["components"]["schemas"]
    assert schemas
    for name, schema in schemas.items():
        assert schema.get("examples"), name
        errors = list(validator(name).iter_errors(schema["examples"][0]))
        assert not errors, (name, [e.message for e in errors])


def test_an_invalid_example_would_be_caught() -> None:
    # The check above can fail: a wrong example is refused by the same validation.
    errors = list(validator("MoveBody").iter_errors({"from": ""}))
    assert errors


def test_no_unused_components_and_no_module_qualified_names() -> None:
    reached = set(openapi._refs(DOC["paths"]))
    todo = list(reached)
    while todo:
        _, _, kind, name = todo.pop().split("/", 3)
        for ref in openapi._refs(DOC["components"][kind][name]):
            if ref not in reached:
                reached.add(ref)
                todo.append(ref)
    for kind in ("schemas", "headers", "parameters"):
        for name in DOC["components"][kind]:
            assert f"#/components/{kind}/{name}" in reached, (kind, name)
            assert "__" not in name, name  # pydantic's module-qualified name for a clash


def test_unused_components_are_dropped() -> None:
    spec = FunctionSpec(name="t", routes=(Route("t.get", "GET", "/api/v5/t", auth="none"),))
    doc = openapi.build((spec,))
    assert set(doc["components"]["headers"]) == {"X-Request-Id", "Allow", "Retry-After"}
    assert "Range" not in doc["components"]["parameters"]


def test_operation_ids_are_unique_and_tags_are_resources() -> None:
    ids = Counter(o["operationId"] for item in DOC["paths"].values() for o in item.values())
    assert ids and max(ids.values()) == 1
    declared = {t["name"] for t in DOC["tags"]}
    for path, item in DOC["paths"].items():
        for operation in item.values():
            assert operation["tags"][0] in declared
            segments = path.split("/")
            if "files" in "/".join(segments[5:]):
                assert operation["tags"] == ["files"], path
    assert op("/api/v5/auth/login", "post")["tags"] == ["auth"]
    assert op("/api/v5/sessions/{session_id}/conversations", "post")["tags"] == ["conversations"]
    assert op("/api/v5/conversations/{conversation_id}/messages", "get")["tags"] == ["messages"]


def test_one_path_parameter_name_per_resource() -> None:
    seen: dict[str, set[str]] = {}
    for path in DOC["paths"]:
        previous = ""
        for segment in path.split("/"):
            m = re.fullmatch(r"\{(\w+)\}", segment)
            if m:
                seen.setdefault(previous, set()).add(m.group(1))
            else:
                previous = segment.split(":", 1)[0]
    assert all(len(names) == 1 for names in seen.values()), seen
    assert seen["sessions"] == {"session_id"} and seen["files"] == {"path"}


def test_files_statuses_headers_and_binary_media() -> None:
    put = op(FILE, "put")
    assert {"200", "201", "412", "413", "507"} <= set(put["responses"])
    assert {"ETag", "X-File-Version"} <= header_refs(put["responses"]["200"])
    assert param_refs(put) == {"If-Match", "If-None-Match"}
    assert put["requestBody"]["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    get = op(FILE, "get")
    assert {"200", "206", "304", "416"} <= set(get["responses"])
    assert "application/octet-stream" in get["responses"]["200"]["content"]
    assert "application/octet-stream" in get["responses"]["206"]["content"]
    assert "content" not in get["responses"]["304"]
    assert "Content-Range" in header_refs(get["responses"]["206"])
    assert "Content-Range" in header_refs(get["responses"]["416"])
    assert param_refs(get) == {"Range", "If-None-Match"}
    head = op(FILE, "head")
    assert all("content" not in a for s, a in head["responses"].items() if s < "400")
    assert param_refs(op(FILE, "delete")) == {"If-Match"}
    for path, item in DOC["paths"].items():
        for operation in item.values():
            for answer in operation["responses"].values():
                assert "*/*" not in answer.get("content", {}), path


def test_generic_error_answers_carry_their_headers() -> None:
    for item in DOC["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            assert "Allow" in header_refs(responses["405"])
            assert "Retry-After" in header_refs(responses["429"])
            if "401" in responses:
                assert "WWW-Authenticate" in header_refs(responses["401"])
            for answer in responses.values():
                assert "X-Request-Id" in header_refs(answer)


def test_route_specific_statuses_and_headers() -> None:
    allocate = op("/api/v5/workspaces", "post")
    assert "404" in allocate["responses"] and param_refs(allocate) == {"Idempotency-Key"}
    for method in ("get", "delete"):
        assert "422" in op("/api/v5/settings/{key}", method)["responses"]
    session = op("/api/v5/sessions/{session_id}", "patch")
    assert param_refs(session) == {"If-Match"} and "ETag" in header_refs(session["responses"]["200"])


def test_the_contracts_limits_are_in_the_schemas() -> None:
    schemas = DOC["components"]["schemas"]
    assert schemas["RegisterBody"]["properties"]["email"]["format"] == "email"
    for name, field in (
        ("MoveBody", "from"),
        ("MoveBody", "to"),
        ("MkdirBody", "path"),
        ("RestoreBody", "path"),
    ):
        prop = schemas[name]["properties"][field]
        assert (prop["minLength"], prop["maxLength"]) == (1, 1024), (name, field)
    versions = {p["name"]: p for p in op("/api/v5/sessions/{session_id}/files:versions", "get")["parameters"]}
    assert versions["path"]["schema"]["maxLength"] == 1024


@pytest.mark.parametrize(
    ("path", "method", "required"),
    [
        ("/api/v5/auth/register", "post", True),
        ("/api/v5/sessions/{session_id}/fork", "post", False),  # ForkBody: every field optional
        ("/api/v5/sessions/{session_id}", "patch", False),
        ("/api/v5/users/me", "patch", False),
        ("/api/v5/sessions/{session_id}/files/{path}", "put", False),  # no body: an empty file
    ],
)
def test_request_bodies_are_optional_exactly_where_the_server_accepts_none(
    path: str, method: str, required: bool
) -> None:
    assert op(path, method)["requestBody"]["required"] is required


def test_links_name_real_operations_and_their_parameters() -> None:
    by_id = {o["operationId"]: o for item in DOC["paths"].values() for o in item.values()}
    links = 0
    for item in DOC["paths"].values():
        for operation in item.values():
            for answer in operation["responses"].values():
                for link in answer.get("links", {}).values():
                    links += 1
                    target = by_id[link["operationId"]]
                    names = {p.get("name") for p in target.get("parameters", [])}
                    assert set(link["parameters"]) <= names, link
    assert links >= 5
    created = op("/api/v5/sessions", "post")["responses"]["201"]["links"]
    assert created["files"]["operationId"] == "files.list"
    assert created["files"]["parameters"] == {"session_id": "$response.body#/data/id"}
    assert (
        "messages" in op("/api/v5/sessions/{session_id}/conversations", "post")["responses"]["201"]["links"]
    )
