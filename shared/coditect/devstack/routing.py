"""The gateway's route table: path + method → function, built from the registry.

The same werkzeug rules the functions route by (`coditect.http.app.build_map`) and the ingress is
rendered from, but whose endpoints are function names. The relay (the `asgi` function) owns
`/workspaces` and everything below it, any method, HTTP and WebSocket alike (api-v5.md, "relay").
"""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.routing import Map, Rule

from coditect.errors import MethodNotAllowed, NotFound
from coditect.registry.spec import FunctionSpec

RELAY_PREFIX = "/workspaces"


class RouteTable:
    """`match(method, path)` → the function name, or raises NotFound / MethodNotAllowed (with Allow)."""

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        specs = list(specs)
        self.rules = [
            Rule(route.path, methods=[route.method], endpoint=spec.name)
            for spec in specs
            for route in spec.routes
        ]
        self.map = Map(self.rules, strict_slashes=False, merge_slashes=False)
        relays = [spec.name for spec in specs if spec.kind == "asgi"]
        self.relay: str | None = relays[0] if relays else None

    def is_relay_path(self, path: str) -> bool:
        return self.relay is not None and (path == RELAY_PREFIX or path.startswith(RELAY_PREFIX + "/"))

    def match(self, method: str, path: str, preflight_method: str | None = None) -> str:
        """The function serving `method path`. A CORS preflight (OPTIONS with
        Access-Control-Request-Method) goes to the function of the method it asks about."""
        if self.is_relay_path(path):
            assert self.relay is not None
            return self.relay
        wanted = preflight_method if method == "OPTIONS" and preflight_method else method
        adapter = self.map.bind("localhost")
        try:
            endpoint, _ = adapter.match(path, wanted.upper())
        except WzMethodNotAllowed as exc:
            raise MethodNotAllowed(list(exc.valid_methods or [])) from None
        except HTTPException:  # NotFound, and any redirect a rule could ask for
            raise NotFound("No such route.") from None
        return str(endpoint)

    def functions(self) -> set[str]:
        """Every function that owns at least one route (or the relay prefix)."""
        names = {str(rule.endpoint) for rule in self.rules}
        if self.relay is not None:
            names.add(self.relay)
        return names
