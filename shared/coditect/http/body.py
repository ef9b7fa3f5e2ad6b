"""Request bodies and query strings into pydantic models, with the contract's error codes.

415 for a body that is not JSON, 413 above the limit (checked before reading), 400
`invalid_json` for malformed JSON, 422 `validation_failed` with details of `loc` and `type`
only — never the offending value or pydantic's message, which can echo secrets back.
"""

from __future__ import annotations

import json
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
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    # Strict JSON validation: a body is held to its documented schema (no 0 for false, no "1" for
    # 1), so what the OpenAPI document refuses the server refuses too.
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc, "body")) from None


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    # The last value wins for repeated parameters, as most frameworks do.
    return validate(model, {k: v[-1] for k, v in request.args.lists()}, "query")
