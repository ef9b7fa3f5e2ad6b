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
- 405 (wrong method on a known path, with `Allow`), 429 (with `Retry-After`) and 500 on every
  operation; 401 answers carry `WWW-Authenticate`, 416 `Content-Range`;
- 507 `insufficient_storage` (with Retry-After) on every write: the store's disk is full;
- 408 `request_timeout` on routes with a body: it arrived below the minimum data rate;
- for `idempotent` routes the `Idempotency-Key` header parameter and 422 `idempotency_key_reused`
  (a malformed key is 422 `validation_failed`).

Path parameters are named by resource in the document (`{session_id}`, `{conversation_id}`, ...),
whatever the werkzeug rule calls them; tags are resources too. Headers a route reads or sets are
declared on the route by name (`Route.request_headers` / `response_headers`) and documented once
in `coditect.platform.catalogue`. Every component schema gets an example (`examples`), generated
from the schema when its model does not give one, so example-based testing has a value for every
body.

`build(functions)` is pure; `document()` caches the registry's document for the openapi function.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from coditect.platform.catalogue import (
    ERROR_HEADERS,
    NESTED_TAGS,
    PARAM_SCHEMAS,
    REQUEST_HEADERS,
    RESOURCE_PARAMS,
    RESPONSE_HEADERS,
    TAG_ALIASES,
    TAGS,
)
from coditect.platform.examples import add_examples
from coditect.registry.spec import FunctionSpec, Route, resolve
from coditect.version import VERSION

OPENAPI_VERSION = "3.1.0"
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
    416: "Range not satisfiable",
    503: "Unavailable",
    507: "Insufficient storage",
}


def _param_names(rule: str) -> dict[str, str]:
    """Rule parameter name → document name: the resource name of the preceding literal segment."""
    names: dict[str, str] = {}
    previous = ""
    for segment in rule.strip("/").split("/"):
        m = _PARAM.fullmatch(segment)
        if m:
            names[m.group("name")] = RESOURCE_PARAMS.get(previous, m.group("name"))
        else:
            previous = segment.split(":", 1)[0]
    return names


def openapi_path(rule: str) -> str:
    """The OpenAPI template of a werkzeug rule: "/sessions/<uuid:id>/x" → "/sessions/{session_id}/x"."""
    names = _param_names(rule)
    return _PARAM.sub(lambda m: "{" + names.get(m.group("name"), m.group("name")) + "}", rule)


def path_parameters(rule: str) -> list[dict[str, Any]]:
    names = _param_names(rule)
    params = []
    for m in _PARAM.finditer(rule):
        name = names.get(m.group("name"), m.group("name"))
        schema = dict(PARAM_SCHEMAS.get(name) or _CONVERTER_SCHEMAS.get(m.group("conv") or "default", {}))
        description = schema.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
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
        routes = list(routes)
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
        bodies = {route.body for route in routes if route.body}
        self._no_request_defaults([self._refs[(body, "validation")]["$ref"] for body in sorted(bodies)])

    def _no_request_defaults(self, refs: list[str]) -> None:
        """A request body property's default goes into its description: generators (openapi-
        typescript with its default options) make a property with a `default` required, which in
        a request it is not. Query parameters keep theirs (generators leave parameters optional)."""
        todo, seen = list(refs), set()
        while todo:
            name = todo.pop().rsplit("/", 1)[-1]
            if name in seen:
                continue
            seen.add(name)
            schema = self.components[name]
            for prop in schema.get("properties", {}).values():
                if "default" in prop:
                    default = json.dumps(prop.pop("default"))
                    prop["description"] = f"{prop.get('description', '')} Default: {default}.".strip()
            todo += [r for r in _refs(schema) if r.startswith("#/components/schemas/")]

    def ref(self, dotted: str, mode: Mode) -> dict[str, Any]:
        return dict(self._refs[(dotted, mode)])

    def query_parameters(self, dotted: str) -> list[dict[str, Any]]:
        ref = self.ref(dotted, "validation")["$ref"]
        schema = self.components[ref.rsplit("/", 1)[-1]]
        required = set(schema.get("required", []))
        return [
            {"name": name, "in": "query", "required": name in required, "schema": _query_schema(prop)}
            for name, prop in schema.get("properties", {}).items()
        ]


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query value is text or absent, never JSON null: `X | None = None` is documented as X."""
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    if len(options) != 1 or not _admits_null(prop):
        return prop
    out = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**options[0], **out}


def _admits_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_admits_null(s) for s in [*schema.get("anyOf", []), *schema.get("oneOf", [])])


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _headers(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-Id", *names)}


_BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


def _success_body(route: Route, schemas: _Schemas) -> dict[str, Any] | None:
    """The `content` of the success answer, or None for one without a body (204, HEAD)."""
    if route.status == 204 or route.method == "HEAD":
        return None
    data: dict[str, Any] = schemas.ref(route.response, "serialization") if route.response else {}
    if not route.enveloped:
        if route.media == "application/json":
            return _content(data or {"type": "object"})
        medias = (route.media,) if isinstance(route.media, str) else route.media
        return {media: {"schema": _BINARY} for media in medias}
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
    return _content(envelope)


def _successes(route: Route, schemas: _Schemas) -> dict[str, Any]:
    """The main success answer (`route.status`) and the route's further ones (`route.also`)."""
    content = _success_body(route, schemas)
    links = {name: {"operationId": op, "parameters": dict(params)} for name, op, params in route.links}
    answers: dict[str, Any] = {}
    for status, description in ((route.status, route.summary or "Success"), *route.also):
        answer: dict[str, Any] = {"description": description}
        extra = ("Content-Range",) if status == 206 else ()
        answer["headers"] = _headers((*route.response_headers, *extra))
        if content is not None and status not in (204, 304):
            answer["content"] = content
        if links and status == route.status:
            answer["links"] = links
        answers[str(status)] = answer
    return answers


def request_headers(route: Route) -> tuple[str, ...]:
    """The request headers a route reads: its declared ones, and Idempotency-Key when `idempotent`
    (the runtime parses that one for the handler)."""
    return (*route.request_headers, *(("Idempotency-Key",) if route.idempotent else ()))


def _tag(path: str) -> str:
    segments = [seg.split(":", 1)[0] for seg in path.removeprefix("/api/v5/").split("/")]
    nested = [seg for seg in segments[1:] if seg in NESTED_TAGS]
    tag = nested[-1] if nested else segments[0]
    return TAG_ALIASES.get(tag, tag)


def operation(spec: FunctionSpec, route: Route, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary or route.name,
        "tags": [_tag(route.path)],
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
    params += [{"$ref": f"#/components/parameters/{name}"} for name in request_headers(route)]
    if params:
        op["parameters"] = params
    if route.body:
        ref = schemas.ref(route.body, "validation")
        # An empty body is validated as {}: a model without required fields needs no body at all.
        required = bool(schemas.components[ref["$ref"].rsplit("/", 1)[-1]].get("required"))
        op["requestBody"] = {"required": required, "content": _content(ref)}
    elif route.raw_body:
        # No body is a valid raw body: an empty file.
        op["requestBody"] = {"required": False, "content": _content(_BINARY, "application/octet-stream")}
    responses = _successes(route, schemas)
    for status, codes in error_answers(route).items():
        text = _STATUS_TEXT.get(status, "Error")
        responses[str(status)] = {
            "description": f"{text}: {', '.join(codes)}",
            "headers": _headers(ERROR_HEADERS.get(status, ())),
            "content": _content({"$ref": REF.format(model="ErrorEnvelope")}),
        }
    op["responses"] = dict(sorted(responses.items()))
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
    components = {**dict(sorted(schemas.components.items())), **_ERROR_SCHEMAS}
    add_examples(components)
    used_tags = sorted({tag for item in paths.values() for op in item.values() for tag in op["tags"]})
    used_headers = {name for _, route in pairs for name in request_headers(route)}
    doc = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Coditect API",
            "version": VERSION,
            "description": "Every route of every Coditect V5 function; generated from the route registry.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag, "description": TAGS.get(tag, tag)} for tag in used_tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "parameters": {
                name: {"name": name, "in": "header", "required": False, **REQUEST_HEADERS[name]}
                for name in sorted(used_headers)
            },
            "headers": dict(RESPONSE_HEADERS),
        },
    }
    _drop_unused(doc)
    return doc


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for v in value.values() for ref in _refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _refs(v)]
    return []


def _drop_unused(doc: dict[str, Any]) -> None:
    """Remove the components no operation reaches (directly or through other components)."""
    components = doc["components"]
    reached: set[str] = set()
    todo = _refs(doc["paths"])
    while todo:
        ref = todo.pop()
        if ref not in reached:
            reached.add(ref)
            _, _, kind, name = ref.split("/", 3)
            todo += _refs(components[kind][name])
    for kind in ("schemas", "headers", "parameters"):
        for name in list(components.get(kind, {})):
            if f"#/components/{kind}/{name}" not in reached:
                del components[kind][name]


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The registry's document (built once per process: it imports every area's models)."""
    from coditect import registry

    return build(registry.FUNCTIONS)
