"""Declarations of functions and routes: the one table from which everything is derived.

The front door's routing, the function's own router, the OpenAPI document, the Knative Services
and the ingress routes are all rendered from these declarations. Models are named by dotted
path ("package.module:Class") so that importing the registry imports no feature code: a
function resolves only its own models at cold start.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

Auth = Literal["none", "user", "admin"]
Kind = Literal["http", "cloudevent", "asgi"]


@dataclass(frozen=True)
class Route:
    """One HTTP route. `path` is a werkzeug rule, e.g. "/api/v5/sessions/<uuid:id>" (ids that are
    not UUIDs then match nothing and answer 404, never 500)."""

    name: str  # unique, "<area>.<action>", the key handlers are bound by
    method: str
    path: str
    auth: Auth = "user"
    summary: str = ""
    status: int = 200
    body: str | None = None  # JSON body model (extra fields forbidden)
    query: str | None = None  # query-string model
    response: str | None = None  # model of `data` (of each item when `paged`)
    paged: bool = False  # data = {"items": [...], "next_cursor": ...}
    raw_body: bool = False  # the handler streams the body itself (files)
    max_body: int | None = None  # JSON body limit when above the default 1 MiB
    enveloped: bool = True  # False: the handler's answer is not wrapped (JWKS, raw files)
    idempotent: bool = False  # accepts Idempotency-Key (coditect.idempotency): a create/append
    # Route-specific error answers for the OpenAPI document, e.g. ((409, "email_taken"),); the
    # generic ones (401/403 by auth, 404/405/413/415/422/429/500) are added by the generator.
    errors: tuple[tuple[int, str], ...] = ()
    # Further success answers besides `status`, e.g. ((200, "A new version was written"),); a 206
    # shares the main answer's media type, a 304 has no body.
    also: tuple[tuple[int, str], ...] = ()
    # Request headers the handler reads and success headers it sets, by name from the catalogue
    # of `coditect.platform.openapi` (HEADERS): "If-Match", "ETag", "Idempotency-Key", ...
    request_headers: tuple[str, ...] = ()
    response_headers: tuple[str, ...] = ()
    # Media type(s) of a success answer that is not enveloped (a static asset may be several).
    media: str | tuple[str, ...] = "application/json"
    # OpenAPI links from the success answer: (name, operationId, ((parameter, expression), ...)).
    links: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class FunctionSpec:
    """One deployable unit: a Knative Service running one functions-framework target."""

    name: str  # Knative Service name and functions/<name>/
    kind: Kind = "http"
    routes: tuple[Route, ...] = ()
    events: tuple[str, ...] = ()  # CloudEvent types delivered to a cloudevent function
    publishes: tuple[str, ...] = ()  # CloudEvent types it publishes (gets K_SINK = the Broker)
    signs_tokens: bool = False  # mounts the private signing key (register, login, refresh)
    extras: tuple[str, ...] = ()  # optional dependency groups of the `coditect` package
    concurrency: int = 8  # gunicorn threads == Knative containerConcurrency
    min_scale: int = 0
    max_scale: int = 20
    memory: str = "256Mi"
    cpu: str = "250m"
    description: str = ""
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def source(self) -> str:
        return f"functions/{self.name}/main.py"

    @property
    def target(self) -> str:
        return "app" if self.kind == "asgi" else "handle"


def resolve(dotted: str) -> Any:
    """Import "package.module:Name"."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)
