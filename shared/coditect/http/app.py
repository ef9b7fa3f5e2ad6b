"""`FunctionApp`: the runtime every HTTP function shares.

A function module binds handlers to the routes the registry declares for it and exposes
its entry point as the functions-framework target `handle`:

    app = FunctionApp("sessions")

    @app.route("sessions.get")
    def get_session(call: Call) -> Reply: ...

    handle = app.entrypoint()

Middleware order is fixed: error rendering (outermost) → request id and the JSON request log →
CORS → authentication → body/query validation → the handler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import flask
from flask import Request, Response
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map, Rule

from coditect import idempotency, registry
from coditect.config import Settings, get_settings
from coditect.errors import (
    ApiError,
    InsufficientStorage,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from coditect.http import body, bodytime, envelope, logs, metrics
from coditect.http.call import Call, Reply
from coditect.http.client_ip import client_ip
from coditect.identity.context import TenantContext
from coditect.registry.spec import FunctionSpec, Route, resolve
from coditect.store import Database, open_store, space

log = logging.getLogger("coditect.http")
Handler = Callable[[Call], Any]
Authenticator = Callable[[Call], TenantContext]
# Where the identity middleware lives; resolved only by functions with protected routes.
AUTHENTICATOR = "coditect.identity.middleware:authenticate"
# The audited 403 for `auth="admin"` routes: (db, ctx, origin, *, reason) -> the error to raise.
ADMIN_REFUSAL = "coditect.identity.authz:forbidden"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# Answered by every function before routing, never logged or counted: the readiness probe of the
# generated Knative Services and the Prometheus scrape. The ingress routes only registry paths,
# so neither is reachable from outside the cluster.
READINESS_PATH, METRICS_PATH = "/healthz", "/metrics"


def request_id_of(request: Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    # A new id is 128 random bits in hex (uuid4().hex's shape, without building a UUID).
    return given if _SANE_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


def build_map(routes: list[Route]) -> Map:
    return Map(
        [Rule(r.path, methods=[r.method], endpoint=r.name) for r in routes],
        strict_slashes=False,
        merge_slashes=False,
    )


class FunctionApp:
    """One function's routes, handlers and middleware; `handle` is the functions-framework target."""

    def __init__(self, name: str, *, settings: Settings | None = None, db: Database | None = None) -> None:
        self.spec: FunctionSpec = registry.function(name)
        self.settings = settings or get_settings()
        self.routes = {r.name: r for r in self.spec.routes}
        self.url_map = build_map(list(self.spec.routes))
        # Bound once: matching needs no per-request server name (the front door already routed),
        # and a MapAdapter only reads its map. Paths without converters skip the matcher.
        self._adapter = self.url_map.bind("localhost")
        self._static = {(r.path, r.method): r for r in self.spec.routes if "<" not in r.path}
        self.handlers: dict[str, Handler] = {}
        logs.configure(name, self.settings.log_level)
        # Opened at cold start: a bad store URL fails the process, not its first request.
        self.db: Database = db or open_store(self.settings.store_url)
        self._authenticator: Authenticator | None = None

    def route(self, name: str) -> Callable[[Handler], Handler]:
        if name not in self.routes:
            raise KeyError(f"route {name!r} is not declared for function {self.spec.name!r}")

        def bind(handler: Handler) -> Handler:
            self.handlers[name] = handler
            return handler

        return bind

    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            self._authenticator = resolve(AUTHENTICATOR)
        return self._authenticator

    def entrypoint(self) -> Callable[[Request], Response]:
        """The plain function functions-framework wants as its target.

        Called at the end of the function's module, after every `@app.route`: a route the
        registry declares for this function without a handler fails the import here.

        functions-framework routes every path to the target through its own Flask url map, whose
        `<path:path>` rule does not match every path (a `%0A` in it, `/robots.txt`): those would
        get Flask's HTML 404. The module is executed inside that Flask app's context, so its
        routing errors are handed to `serve` here: every answer is our JSON envelope with
        X-Request-Id, logged and counted like any other.
        """
        unbound = sorted(set(self.routes) - set(self.handlers))
        if unbound:
            raise LookupError(f"function {self.spec.name!r} declares routes without a handler: {unbound}")

        def handle(request: Request) -> Response:
            return self.serve(request)

        if flask.has_app_context():
            flask.current_app.register_error_handler(HTTPException, lambda _exc: self.serve(flask.request))
            # Unread bodies are never drained: the server closes instead (coditect.http.bodytime).
            flask.current_app.wsgi_app = bodytime.CloseAware(flask.current_app.wsgi_app)  # type: ignore[method-assign]

        handle.__doc__ = f"functions-framework target of the {self.spec.name!r} function."
        return handle

    # -- the request pipeline ---------------------------------------------------------------
    def serve(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD") and request.path in (READINESS_PATH, METRICS_PATH):
            text, ctype = metrics.exposition() if request.path == METRICS_PATH else (b"ok\n", "text/plain")
            return Response(text, content_type=ctype, headers={"Cache-Control": "no-store"})
        started = time.perf_counter()
        rid = request_id_of(request)
        fields: dict[str, Any] = {"request_id": rid, "method": request.method}
        bodytime.install(
            request, grace=self.settings.body_grace_seconds, min_rate=self.settings.body_min_rate
        )
        try:
            response = self._dispatch(request, rid, fields)
        except ApiError as exc:
            response = envelope.error_response(exc, rid)
        except space.StoreFull:
            response = envelope.error_response(_storage_full(), rid)
        except HTTPException as exc:
            response = envelope.error_response(_from_werkzeug(exc), rid)
        except Exception:
            log.exception("unhandled error", extra={"fields": fields})
            response = envelope.error_response(ApiError(), rid)
        bodytime.finish(request, response)
        _standard_headers(response, rid, fields.get("enveloped", True))
        self._cors(request, response)
        fields.update(
            status=response.status_code, latency_ms=round((time.perf_counter() - started) * 1000, 2)
        )
        fields.pop("enveloped", None)
        logs.request_line(log, fields)
        metrics.observe_request(
            self.spec.name,
            fields.get("route", "unmatched"),
            request.method,
            response.status_code,
            time.perf_counter() - started,
        )
        return response

    def _dispatch(self, request: Request, rid: str, fields: dict[str, Any]) -> Response:
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            return self._preflight(self._adapter, request)
        args: Mapping[str, Any] = {}
        route = self._static.get((request.path, request.method))
        if route is not None:
            name = route.name
        else:
            try:
                name, args = self._adapter.match(request.path, request.method)
            except WzMethodNotAllowed as exc:
                raise MethodNotAllowed(list(exc.valid_methods or [])) from None
            except WzNotFound:
                raise NotFound("No such route.") from None
            route = self.routes[name]
        fields.update(route=route.name, enveloped=route.enveloped)
        call = Call(
            request=request,
            route=route,
            params={k: str(v) for k, v in args.items()},
            request_id=rid,
            db=self.db,
            settings=self.settings,
            client_ip=client_ip(
                request.remote_addr or "unknown",
                request.headers.getlist("X-Forwarded-For"),
                self.settings.trusted_proxy_hops,
                request.headers.getlist(header) if (header := self.settings.client_ip_header) else None,
            ),
        )
        if route.auth != "none":
            call.auth = self.authenticator()(call)
            fields.update(tenant_id=call.auth.tenant_id, user_id=call.auth.user_id)
            if route.auth == "admin" and not call.auth.is_admin:
                raise resolve(ADMIN_REFUSAL)(call.db, call.auth, call.origin, reason="role_required")
        if route.idempotent:
            call.idempotency_key = idempotency.parse(request.headers.get(idempotency.HEADER))
        if route.query:
            call.query = body.parse_query(request, resolve(route.query))
        if route.body:
            limit = route.max_body or self.settings.max_json_body
            call.body = body.parse_json_body(request, resolve(route.body), limit)
        # A DELETE frees space: its transactions may use the store's reserve on a full disk.
        with space.freeing() if request.method == "DELETE" else contextlib.nullcontext():
            result = self.handlers[name](call)
        return self._render(route, result)

    @staticmethod
    def _render(route: Route, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        status, headers = route.status, {}
        if isinstance(result, Reply):
            status, headers, result = result.status or status, result.headers, result.data
        if not route.enveloped:
            return envelope.json_response(result, status, headers)
        return envelope.success(result, status, headers)

    def _preflight(self, adapter: Any, request: Request) -> Response:
        method = request.headers.get("Access-Control-Request-Method", "")
        try:
            adapter.match(request.path, method)
        except WzMethodNotAllowed as exc:
            raise MethodNotAllowed(list(exc.valid_methods or [])) from None
        except WzNotFound:
            raise NotFound("No such route.") from None
        response = envelope.empty()
        if request.headers.get("Origin") in self.settings.cors_origins:
            response.headers["Access-Control-Allow-Methods"] = method
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-Id, Range, "
                "X-Coditect-Token-Mode"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    def _cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        if origin and origin in self.settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = (
                "ETag, X-Request-Id, X-File-Version, Retry-After, Content-Range"
            )
        response.headers.add("Vary", "Origin")


_ENVELOPED_DEFAULTS = tuple((name, name.lower(), value) for name, value in envelope.API_HEADERS.items())
_RAW_DEFAULTS = (
    ("X-Content-Type-Options", "x-content-type-options", "nosniff"),
    *((name, name.lower(), value) for name, value in envelope.FRAMING_HEADERS.items()),
)


def _standard_headers(response: Response, rid: str, enveloped: bool) -> None:
    """X-Request-Id (always ours), then the default headers the handler did not set itself
    (enveloped answers: `envelope.API_HEADERS`; raw ones: nosniff and the framing headers).

    One pass over the few headers present instead of a scan per `set`/`setdefault`."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if "x-request-id" in present:
        headers["X-Request-Id"] = rid
    else:
        headers.add("X-Request-Id", rid)
    for name, lowered, value in _ENVELOPED_DEFAULTS if enveloped else _RAW_DEFAULTS:
        if lowered not in present:
            headers.add(name, value)


def _storage_full() -> ApiError:
    """507 for a write the store's full disk cannot hold; clients retry later (or delete)."""
    return InsufficientStorage(
        "The server is out of storage space; retry later.",
        code="insufficient_storage",
        headers={"Retry-After": "30"},
    )


def _from_werkzeug(exc: HTTPException) -> ApiError:
    if exc.code == 413:
        return PayloadTooLarge()
    error = ApiError(exc.description or None, code=(exc.name or "error").lower().replace(" ", "_"))
    error.status = exc.code or 500  # type: ignore[misc]
    return error
