"""The OpenAPI 3.1 document of every route of every function, generated from the registry.

Nothing here is written by hand per route: paths and methods come from the registry's werkzeug
rules (`<uuid:id>` → `{id}`, `<path:path>` → `{path}`), bodies, query parameters and `data` from
the routes' pydantic models (one `models_json_schema` call, so equal names never collide), and
the envelope and the error answers from the runtime's own rules. A route can declare the
specific errors it answers (`Route.errors`); the generic ones are added here:

- 401 (token_missing, token_invalid, token_expired, session_revoked) for `auth` user/admin,
  403 `forbidden` for admin routes;
- 404 for routes with path parameters (a missing object, another tenant's, or a non-UUID id);
- 400 invalid_json, 413, 415 and 422 for routes with a JSON body; 422 for routes with a query;
- 400 invalid_cursor for paged routes (their `cursor` is opaque and bound to the query);
- 405 (wrong method on a known path), 429 and 500 on every operation;
- 507 `insufficient_storage` (with Retry-After) on every write: the store's disk is full;
- 408 `request_timeout` on routes with a body: it arrived below the minimum data rate;
- for `idempotent` routes the `Idempotency-Key` header parameter and 422 `idempotency_key_reused`
  (a malformed key is 422 `validation_failed`).

`build(functions)` is pure; `document()` caches the registry's document for the openapi function.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from coditect.registry.spec import FunctionSpec, Route, resolve

OPENAPI_VERSION = "3.1.0"
API_VERSION = "5.0.0"
REF = "#/components/schemas/{model}"
# "<converter(args):name>" or "<name>" in a werkzeug rule.
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "path": {"type": "string", "description": "A relative path; may contain '/'."},
    "default": {"type": "string"},
    "string": {"type": "string"},
}
_AUTH_CODES = "token_missing, token_invalid, token_expired, session_revoked"
_STATUS_TEXT = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Rate limited",
    500: "Internal error",
    503: "Unavailable",
    507: "Insufficient storage",
}


def openapi_path(rule: str) -> str:
    """The OpenAPI template of a werkzeug rule: "/a/<uuid:id>/<path:p>" → "/a/{id}/{p}"."""
    return _PARAM.sub(lambda m: "{" + m.group("name") + "}", rule)


def path_parameters(rule: str) -> list[dict[str, Any]]:
    params = []
    for m in _PARAM.finditer(rule):
        schema = dict(_CONVERTER_SCHEMAS.get(m.group("conv") or "default", {"type": "string"}))
        description = schema.pop("description", None)
        param: dict[str, Any] = {"name": m.group("name"), "in": "path", "required": True, "schema": schema}
        if description:
            param["description"] = description
        params.append(param)
    return params


def error_answers(route: Route) -> dict[int, list[str]]:
    """Status → the error codes this route can answer (generic rules plus `route.errors`)."""
    answers: dict[int, list[str]] = {
        405: ["method_not_allowed"],
        429: ["rate_limited"],
        500: ["internal_error"],
    }
    if route.auth != "none":
        answers[401] = [_AUTH_CODES]
    if route.auth == "admin":
        answers[403] = ["forbidden"]
    if _PARAM.search(route.path):
        answers[404] = ["not_found"]
    if route.body:
        answers[400] = ["invalid_json"]
        answers[413] = ["payload_too_large"]
        answers[415] = ["unsupported_media_type"]
    if route.body or route.query:
        answers[422] = ["validation_failed"]
    if route.paged:
        answers.setdefault(400, []).append("invalid_cursor")
    if route.idempotent:
        answers.setdefault(422, ["validation_failed"]).append("idempotency_key_reused")
    if route.method not in ("GET", "HEAD"):
        answers[507] = ["insufficient_storage"]
    if route.body or route.raw_body:
        answers[408] = ["request_timeout"]  # the body arrived too slowly (coditect.http.bodytime)
    for status, code in route.errors:
        answers.setdefault(status, [])
        if code not in answers[status]:
            answers[status].append(code)
    return dict(sorted(answers.items()))


Mode = Literal["validation", "serialization"]


class _Schemas:
    """Every model the routes name, turned into components/schemas in one pass."""

    def __init__(self, routes: Iterable[Route]) -> None:
        wanted: dict[tuple[str, Mode], type[BaseModel]] = {}
        for route in routes:
            for dotted, mode in (
                (route.body, "validation"),
                (route.query, "validation"),
                (route.response, "serialization"),
            ):
                if dotted:
                    model = resolve(dotted)
                    if not (isinstance(model, type) and issubclass(model, BaseModel)):
                        raise TypeError(f"route {route.name}: {dotted} is not a pydantic model")
                    wanted[(dotted, mode)] = model  # type: ignore[index]
        keys = sorted(wanted)
        refs, defs = models_json_schema([(wanted[k], k[1]) for k in keys], ref_template=REF, by_alias=True)
        self.components: dict[str, Any] = defs.get("$defs", {})
        for schema in self.components.values():
            for prop in schema.get("properties", {}).values():
                # `x: str = None` means "may be omitted, may not be null": the field is optional,
                # but a `default: null` its own schema refuses would make the document invalid.
                if "default" in prop and prop["default"] is None and not _admits_null(prop):
                    del prop["default"]
        self._refs = {k: refs[(wanted[k], k[1])] for k in keys}

    def ref(self, dotted: str, mode: Mode) -> dict[str, Any]:
        return dict(self._refs[(dotted, mode)])

    def query_parameters(self, dotted: str) -> list[dict[str, Any]]:
        ref = self.ref(dotted, "validation")["$ref"]
        schema = self.components[ref.rsplit("/", 1)[-1]]
        required = set(schema.get("required", []))
        return [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()
        ]


def _admits_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_admits_null(s) for s in [*schema.get("anyOf", []), *schema.get("oneOf", [])])


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _success(route: Route, schemas: _Schemas) -> dict[str, Any]:
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    description = route.summary or "Success"
    if route.status == 204:
        return {"description": description, "headers": headers}
    data: dict[str, Any] = schemas.ref(route.response, "serialization") if route.response else {}
    if not route.enveloped:
        media = "application/json" if route.response or route.name.endswith(".json") else "*/*"
        schema = data or ({"type": "object"} if media == "application/json" else {})
        return {"description": description, "headers": headers, "content": _content(schema, media)}
    if route.paged:
        data = {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": data},
                "next_cursor": {"type": ["string", "null"]},
            },
        }
    envelope = {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }
    return {"description": description, "headers": headers, "content": _content(envelope)}


def operation(spec: FunctionSpec, route: Route, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary or route.name,
        "tags": [spec.name],
        "x-coditect-function": spec.name,
        "security": [{"bearerAuth": []}] if route.auth != "none" else [],
    }
    params = path_parameters(route.path)
    if route.query:
        params += schemas.query_parameters(route.query)
    if route.paged and not route.query:
        params += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            },
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
    if route.idempotent:
        params.append({"$ref": "#/components/parameters/Idempotency-Key"})
    if params:
        op["parameters"] = params
    if route.body:
        op["requestBody"] = {"required": True, "content": _content(schemas.ref(route.body, "validation"))}
    elif route.raw_body:
        op["requestBody"] = {"required": True, "content": {"application/octet-stream": {"schema": {}}}}
    responses: dict[str, Any] = {str(route.status): _success(route, schemas)}
    for status, codes in error_answers(route).items():
        text = _STATUS_TEXT.get(status, "Error")
        responses[str(status)] = {
            "description": f"{text}: {', '.join(codes)}",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
            "content": _content({"$ref": REF.format(model="ErrorEnvelope")}),
        }
    op["responses"] = responses
    return op


_ERROR_SCHEMAS: dict[str, Any] = {
    "ErrorEnvelope": {
        "type": "object",
        "required": ["success", "error", "request_id"],
        "properties": {
            "success": {"const": False},
            "error": {"$ref": REF.format(model="Error")},
            "request_id": {"type": "string"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "Stable snake_case code."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"$ref": REF.format(model="ErrorDetail")}},
        },
        "additionalProperties": False,
    },
    "ErrorDetail": {
        "type": "object",
        "description": "Where a validation failed and how; never the offending value.",
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
            "type": {"type": "string"},
        },
    },
}


def build(functions: Iterable[FunctionSpec]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `functions`."""
    specs = list(functions)
    pairs = [(spec, route) for spec in specs for route in spec.routes]
    schemas = _Schemas(route for _, route in pairs)
    paths: dict[str, dict[str, Any]] = {}
    for spec, route in pairs:
        item = paths.setdefault(openapi_path(route.path), {})
        method = route.method.lower()
        if method in item:
            raise ValueError(
                f"two routes answer {route.method} {route.path}: {item[method]['operationId']}, {route.name}"
            )
        item[method] = operation(spec, route, schemas)
    overlap = set(schemas.components) & set(_ERROR_SCHEMAS)
    if overlap:
        raise ValueError(f"model names clash with the envelope schemas: {sorted(overlap)}")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Coditect API",
            "version": API_VERSION,
            "description": "Every route of every Coditect V5 function; generated from the route registry.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": s.name, "description": s.description} for s in specs if s.routes],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**dict(sorted(schemas.components.items())), **_ERROR_SCHEMAS},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "parameters": {
                "Idempotency-Key": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "Makes a create or append safe to repeat: a repeat with the same key and body "
                        "answers what the first request made (1 to 200 visible ASCII characters; a UUID). "
                        "The same key with another body is 422 idempotency_key_reused."
                    ),
                    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                }
            },
            "headers": {
                "X-Request-Id": {
                    "description": "The caller's X-Request-Id when it is a sane token, else a new one.",
                    "schema": {"type": "string"},
                }
            },
        },
    }


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The registry's document (built once per process: it imports every area's models)."""
    from coditect import registry

    return build(registry.FUNCTIONS)
