"""Request bodies and query strings into pydantic models, with the contract's error codes.

415 for a body that is not JSON, 413 above the limit (checked before reading), 400
`invalid_json` for malformed or hostile JSON (see `loads`), 422 `validation_failed` with details of `loc` and `type`
only — never the offending value or pydantic's message, which can echo secrets back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request
from pydantic import BaseModel, ValidationError

from coditect.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed


def validation_details(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    return [{"loc": [where, *err["loc"]], "type": err["type"]} for err in exc.errors()]


def validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc, where)) from None


class _Hostile(ValueError):
    """JSON that parses in Python but that no client of ours sends: refused as `invalid_json`."""


def _no_constants(name: str) -> Any:
    raise _Hostile(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Hostile("number out of range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Hostile("duplicate key")
    return result


# Far beyond any field we accept (the largest is a byte count), far below Python's 4300-digit
# limit whose ValueError was not a JSONDecodeError and became a 500.
MAX_INT_DIGITS = 64
# A `\\uD800`-`\\uDFFF` escape: valid only as half of a pair; a lone one decodes to a string that
# cannot be encoded again (and would fail later, deep in a store write).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:
        raise _Hostile("integer too long")
    return int(text)


def loads(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): UTF-8 only, no NaN/Infinity, no duplicate keys, no number beyond
    `MAX_INT_DIGITS` digits or the float range; nesting beyond the interpreter's recursion limit
    (the C decoder raises RecursionError) and lone UTF-16 surrogate escapes are refused too.

    Raises `BadRequest("invalid_json")` for anything else — never ValueError or RecursionError.
    """
    try:
        data = json.loads(
            raw.decode("utf-8"),
            parse_constant=_no_constants,
            parse_float=_finite,
            parse_int=_int,
            object_pairs_hook=_unique,
        )
        if _SURROGATE_ESCAPE.search(raw):  # rare: pay for a re-encode only then
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        return data
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None


def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) before reading when it announces more than `limit` bytes
    and while reading when a chunked body runs past it."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge()
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge()
    return data


def parse_json_body(request: Request, model: type[BaseModel], limit: int) -> BaseModel:
    raw = read_limited(request, limit)
    if not raw.strip():
        return validate(model, {}, "body")
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    loads(raw)  # hostile JSON (huge numbers, NaN, duplicate keys, depth) is 400 here
    # Strict validation of the same bytes: a body is held to its documented schema (no 0 for false,
    # no "1" for 1), so what the OpenAPI document refuses the server refuses too.
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc, "body")) from None


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    # The last value wins for repeated parameters, as most frameworks do.
    return validate(model, {k: v[-1] for k, v in request.args.lists()}, "query")
