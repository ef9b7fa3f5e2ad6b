"""What a handler receives (`Call`) and may return (`Reply`, a model, a dict, a list or None)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Request

from coditect.config import Settings
from coditect.errors import NotFound, Unauthorized
from coditect.identity.context import TenantContext
from coditect.origin import Origin
from coditect.registry.spec import Route
from coditect.store import Database


@dataclass
class Call:
    request: Request
    route: Route
    params: dict[str, str]
    request_id: str
    db: Database
    settings: Settings
    client_ip: str
    body: Any = None  # the validated body model, when the route declares one
    query: Any = None  # the validated query model, when the route declares one
    auth: TenantContext | None = None
    idempotency_key: str | None = None  # the valid Idempotency-Key of an `idempotent` route

    @property
    def ctx(self) -> TenantContext:
        """The caller's tenant context (routes with auth "user"/"admin" always have one)."""
        if self.auth is None:
            raise Unauthorized(code="token_missing")
        return self.auth

    @property
    def origin(self) -> Origin:
        """Where the request came from, for the services that record it."""
        return Origin(self.request_id, self.client_ip, self.request.headers.get("User-Agent"))

    def uuid_param(self, name: str) -> str:
        """A path parameter that must be a UUID: anything else is simply not found."""
        try:
            return str(uuid.UUID(self.params[name]))
        except (KeyError, ValueError):
            raise NotFound() from None


@dataclass
class Reply:
    """A success answer with a status and headers other than the route's defaults."""

    data: Any = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
