"""The API error hierarchy: every error a client can see carries an HTTP status and a stable code.

    ApiError                      (500 internal_error: the fallback, message never shows details)
    ├── BadRequest                400  invalid_json, invalid_path, invalid_cursor, bad_request
    ├── Unauthorized              401  token_missing, token_invalid, token_expired, session_revoked,
    │                                  invalid_credentials, refresh_token_*, session_expired
    ├── Forbidden                 403  forbidden, origin_not_allowed
    ├── NotFound                  404  not_found (also: another tenant's or user's object)
    ├── MethodNotAllowed          405  method_not_allowed (carries the Allow list)
    ├── Conflict                  409  email_taken, directory_not_empty, conflict, ...
    ├── PreconditionFailed        412  precondition_failed
    ├── PayloadTooLarge           413  payload_too_large, file_too_large, content_too_large
    ├── UnsupportedMediaType      415  unsupported_media_type
    ├── ValidationFailed          422  validation_failed (details = [{loc, type}]), weak_password
    ├── RateLimited               429  rate_limited (carries Retry-After)
    ├── InsufficientStorage       507  quota_exceeded, insufficient_storage (full disk, Retry-After)
    └── ServiceUnavailable        503  unavailable

Handlers raise these; the runtime renders them as the contract's error envelope. Anything else
raised becomes a generic 500 whose details go only to the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class ApiError(Exception):
    """An error with an HTTP status, a stable snake_case code and a human message."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.details = list(details) if details is not None else None
        self.headers = dict(headers or {})
        super().__init__(f"{self.code}: {self.message}")


class BadRequest(ApiError):
    status = 400
    default_code = "bad_request"
    default_message = "The request is malformed."


class Unauthorized(ApiError):
    """401; always answered with `WWW-Authenticate: Bearer error="invalid_token"`."""

    status = 401
    default_code = "token_invalid"
    default_message = "Authentication failed."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(ApiError):
    status = 404
    default_code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(ApiError):
    status = 405
    default_code = "method_not_allowed"
    default_message = "Method not allowed."

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__(headers={"Allow": ", ".join(sorted(set(allowed)))})


class RequestTimeout(ApiError):
    """The request body did not arrive in time (answered by the front door, docs/frontdoor.md)."""

    status = 408
    default_code = "request_timeout"
    default_message = "The request body was not received in time."


class Conflict(ApiError):
    status = 409
    default_code = "conflict"
    default_message = "The request conflicts with the current state."


class PreconditionFailed(ApiError):
    status = 412
    default_code = "precondition_failed"
    default_message = "A precondition of the request did not hold."


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(ApiError):
    status = 415
    default_code = "unsupported_media_type"
    default_message = "The request body must be application/json."


class ValidationFailed(ApiError):
    """422 with details `[{"loc": [...], "type": "..."}]`: never values or internals."""

    status = 422
    default_code = "validation_failed"
    default_message = "The request did not validate."


class RateLimited(ApiError):
    status = 429
    default_code = "rate_limited"
    default_message = "Too many requests; retry later."

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class ServiceUnavailable(ApiError):
    status = 503
    default_code = "unavailable"
    default_message = "The service is temporarily unavailable."


class InsufficientStorage(ApiError):
    status = 507
    default_code = "quota_exceeded"
    default_message = "The storage quota is exceeded."


def raise_returned(result: T | ApiError) -> T:
    """Raise `result` when a transaction body returned an error instead of raising it.

    A body that raises aborts its transaction; one that must still commit what it wrote before
    refusing (a rate-limit strike, the audit record of a refusal) returns the error instead, and
    the caller passes the committed result through here: `raise_returned(db.transact(body))`.
    """
    if isinstance(result, ApiError):
        raise result
    return result
