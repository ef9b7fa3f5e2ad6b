"""The response envelope of api-v5.md, in one place.

Success `{"success": true, "data": …}`; list `data = {"items": […], "next_cursor": …}`;
error `{"success": false, "error": {"code", "message", "details"?}, "request_id"}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from coditect.errors import ApiError
from flask import Response
from pydantic import BaseModel

API_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def to_jsonable(value: Any) -> Any:
    """Models become their JSON form (aliases, RFC 3339 times); containers recurse."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(to_jsonable(payload), separators=(",", ":"), ensure_ascii=False)
    response = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def success(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    if status == 204:
        return empty(headers)
    return json_response({"success": True, "data": data}, status, headers)


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def empty(headers: Mapping[str, str] | None = None) -> Response:
    response = Response(status=204)
    response.headers.pop("Content-Type", None)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(exc: ApiError, request_id: str) -> Response:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        error["details"] = exc.details
    return json_response(
        {"success": False, "error": error, "request_id": request_id}, exc.status, exc.headers
    )
