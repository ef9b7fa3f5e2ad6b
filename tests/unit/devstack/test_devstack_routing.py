"""The gateway's route table is the registry's: every declared route reaches its function."""

from __future__ import annotations

import uuid

import pytest
from werkzeug.routing import IntegerConverter, PathConverter, UUIDConverter

from coditect import registry
from coditect.devstack.routing import RouteTable
from coditect.errors import MethodNotAllowed, NotFound
from coditect.registry.spec import FunctionSpec, Route


def sample_path(rule: object) -> str:
    """A concrete path matching a werkzeug rule (UUIDs for <uuid:...>, etc.)."""
    values: dict[str, object] = {}
    for name, converter in rule._converters.items():  # type: ignore[attr-defined]
        if isinstance(converter, UUIDConverter):
            values[name] = uuid.uuid4()
        elif isinstance(converter, PathConverter):
            values[name] = "some/nested/file.txt"
        elif isinstance(converter, IntegerConverter):
            values[name] = 7
        else:
            values[name] = "sample-value"
    _, path = rule.build(values)  # type: ignore[attr-defined]
    return str(path)


def test_every_registry_route_goes_to_its_function() -> None:
    table = RouteTable(registry.FUNCTIONS)
    pairs = registry.routes()
    assert pairs, "the registry declares routes"
    for spec, route in pairs:
        rule = next(r for r in table.rules if r.rule == route.path and route.method in (r.methods or ()))
        assert table.match(route.method, sample_path(rule)) == spec.name, route.name


def test_the_table_holds_exactly_the_registry_routes() -> None:
    table = RouteTable(registry.FUNCTIONS)
    declared = sorted((route.method, route.path, spec.name) for spec, route in registry.routes())
    built = sorted(
        (next(iter((r.methods or set()) - {"HEAD"}), "HEAD"), r.rule, str(r.endpoint)) for r in table.rules
    )
    assert built == declared


SPECS = (
    FunctionSpec("items-read", routes=(Route("items.list", "GET", "/api/v5/items"),
                                       Route("items.get", "GET", "/api/v5/items/<uuid:id>"))),
    FunctionSpec("items-write", routes=(Route("items.create", "POST", "/api/v5/items"),
                                        Route("items.delete", "DELETE", "/api/v5/items/<uuid:id>"))),
    FunctionSpec("relay", kind="asgi"),
)  # fmt: skip


def test_methods_of_one_path_may_live_in_different_functions() -> None:
    table = RouteTable(SPECS)
    item = f"/api/v5/items/{uuid.uuid4()}"
    assert table.match("GET", "/api/v5/items") == "items-read"
    assert table.match("POST", "/api/v5/items") == "items-write"
    assert table.match("HEAD", item) == "items-read"
    assert table.match("DELETE", item) == "items-write"
    assert table.match("GET", "/api/v5/items/") == "items-read"  # strict_slashes off, as in functions


def test_a_wrong_method_is_405_listing_every_function_s_methods() -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        RouteTable(SPECS).match("PUT", "/api/v5/items")
    assert caught.value.headers["Allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize("path", ["/api/v5/nothing", "/api/v5/items/not-a-uuid", "/", "/workspace"])
def test_unknown_paths_are_404(path: str) -> None:
    with pytest.raises(NotFound):
        RouteTable(SPECS).match("GET", path)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_workspaces_belong_to_the_relay_for_every_method(method: str) -> None:
    table = RouteTable(SPECS)
    assert table.match(method, f"/workspaces/{uuid.uuid4()}/index.html") == "relay"
    assert table.match(method, "/workspaces") == "relay"


def test_without_a_relay_workspaces_are_404() -> None:
    with pytest.raises(NotFound):
        RouteTable(SPECS[:2]).match("GET", "/workspaces/x/y")


def test_a_cors_preflight_goes_to_the_function_of_the_asked_method() -> None:
    table = RouteTable(SPECS)
    assert table.match("OPTIONS", "/api/v5/items", preflight_method="POST") == "items-write"
    with pytest.raises(MethodNotAllowed):
        table.match("OPTIONS", "/api/v5/items")  # a bare OPTIONS, as the function answers it
