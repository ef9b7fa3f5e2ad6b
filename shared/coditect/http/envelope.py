"""The response envelope of api-v5.md, in one place.

Success `{"success": true, "data": …}`; list `data = {"items": […], "next_cursor": …}`;
error `{"success": false, "error": {"code", "message", "details"?}, "request_id"}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response
from pydantic import BaseModel

from coditect.errors import ApiError

# Every API answer: not cached, not sniffed, not framable by anyone (a JSON API has no reason to
# be framed; OWASP REST Security), no resource loads from it if a browser ever renders one.
FRAMING_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
API_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    **FRAMING_HEADERS,
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


def _model_or_mapping(value: Any) -> Any:
    """json.dumps' hook: what to_jsonable does for models and non-dict mappings, on demand."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(payload: Any) -> str:
    """The compact JSON text of `payload`, models in their JSON form.

    The encoder calls back only for what it cannot write itself (a model, a non-dict mapping),
    so a payload is not copied first; dict keys json cannot write (say a UUID) fall back to the
    copying `to_jsonable` path, which turns every key into str.
    """
    try:
        return _ENCODER.encode(payload)
    except TypeError:
        return _PLAIN.encode(to_jsonable(payload))


# json.dumps with any option builds a new encoder per call; these are built once (stateless).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_model_or_mapping)
_PLAIN = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = dumps(payload)
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


_REQUEST_ID_SLOT = "REQUESTIDSENTINEL"


def error_template(exc: ApiError, request_id: str, escape: Callable[[str], str] = str) -> str:
    """The body `error_response(exc, ...)` answers, as a proxy's template (the local front door's
    Caddy, the production gateway's Envoy): the text passed through `escape` (the proxy's own
    quoting), then `request_id` — the proxy's variable for it — where the request id goes."""
    text = error_response(exc, _REQUEST_ID_SLOT).get_data(as_text=True)
    return escape(text).replace(_REQUEST_ID_SLOT, request_id)
