"""Cookie mode of the token endpoints: the refresh token for browsers (RFC 9700, OAuth 2.0 for
browser-based apps), next to the JSON mode that API clients use.

A browser must not keep a refresh token where scripts can read it. A client asks for cookie mode
with the header ``X-Coditect-Token-Mode: cookie`` on register, login, refresh and logout:

- register and login answer as usual but without ``tokens.refresh_token``; the token is set as an
  HttpOnly, SameSite=Strict cookie (``Secure`` when the page's origin is https) whose Path is the
  refresh endpoint, and the same cookie again scoped to the logout endpoint, so no other request
  ever carries it;
- refresh reads the token from that cookie (the body is empty or ``{}``), rotates it and sets the
  successor the same way;
- logout revokes the login session (Bearer, as in JSON mode) and expires both cookies.

CSRF defence, checked before anything else happens: a cookie-mode call must carry an ``Origin``
equal to an entry of ``cors_origins`` (403 ``origin_not_allowed``) and the custom header itself
(which a cross-site form cannot send and a cross-origin script cannot send without a preflight
that only allowed origins pass). Without the header nothing changes: JSON mode is untouched.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Response
from pydantic import BaseModel, ConfigDict, Field

from coditect.errors import BadRequest, Forbidden, Unauthorized, ValidationFailed
from coditect.http import envelope
from coditect.http.call import Call
from coditect.identity.models import AuthOut, RefreshBody, RefreshOut, TenantOut, UserOut

MODE_HEADER = "X-Coditect-Token-Mode"
COOKIE_NAME = "coditect_refresh"
REFRESH_PATH = "/api/v5/auth/refresh"
LOGOUT_PATH = "/api/v5/auth/logout"
COOKIE_PATHS = (REFRESH_PATH, LOGOUT_PATH)

Mode = Literal["json", "cookie"]


# -- the shapes of both modes, as the OpenAPI document shows them ------------------------------
class TokensAnswer(BaseModel):
    """Tokens. In cookie mode (`X-Coditect-Token-Mode: cookie`) `refresh_token` is absent: it is
    set as the HttpOnly cookie `coditect_refresh` (Path = the refresh and the logout endpoint)."""

    access_token: str
    refresh_token: str | None = Field(default=None, description="Absent in cookie mode.")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 — the OAuth token type, not a secret
    expires_in: int


class AuthAnswer(BaseModel):
    """Register and login. Send `X-Coditect-Token-Mode: cookie` (with an allowed `Origin`) to get
    the refresh token as an HttpOnly, SameSite=Strict cookie instead of in the body."""

    user: UserOut
    tenant: TenantOut
    tokens: TokensAnswer


class RefreshAnswer(BaseModel):
    """The new tokens; in cookie mode the new refresh token replaces the cookie."""

    tokens: TokensAnswer


class RefreshRequest(BaseModel):
    """JSON mode: `{"refresh_token": "..."}`. Cookie mode (header `X-Coditect-Token-Mode: cookie`,
    an allowed `Origin`): an empty body or `{}`; the token comes from the `coditect_refresh`
    cookie."""

    model_config = ConfigDict(extra="forbid")
    # As RefreshBody: an access token sent by mistake is 401 refresh_token_not_found, not a 422.
    refresh_token: Annotated[str, Field(max_length=8192)] | None = None


# -- the hooks the four functions call ------------------------------------------------------
def mode_of(call: Call) -> Mode:
    """The token mode the client asked for; cookie mode passes the CSRF checks or raises."""
    raw = call.request.headers.get(MODE_HEADER)
    if raw is None or raw.strip().lower() == "json":
        return "json"
    if raw.strip().lower() != "cookie":
        raise BadRequest(f"{MODE_HEADER} must be 'json' or 'cookie'.", code="invalid_token_mode")
    origins = call.request.headers.getlist("Origin")
    if len(origins) != 1 or origins[0] not in call.settings.cors_origins:
        raise Forbidden("Cookie mode needs an allowed Origin.", code="origin_not_allowed")
    return "cookie"


def refresh_body(call: Call, mode: Mode) -> RefreshBody:
    """The refresh token to redeem: the body's in JSON mode, the cookie's in cookie mode."""
    given: RefreshRequest = call.body
    if mode == "json":
        if given.refresh_token is None:
            # Exactly what the JSON mode answered before cookie mode existed.
            raise ValidationFailed(details=[{"loc": ["body", "refresh_token"], "type": "missing"}])
        return RefreshBody(refresh_token=given.refresh_token)
    if given.refresh_token is not None:
        raise BadRequest(
            "In cookie mode the refresh token comes from the cookie.", code="token_mode_conflict"
        )
    token = call.request.cookies.get(COOKIE_NAME, "")
    if not token or len(token) > 256:
        raise Unauthorized("No refresh cookie was sent.", code="refresh_token_missing")
    return RefreshBody(refresh_token=token)


def answer(call: Call, mode: Mode, result: AuthOut | RefreshOut, status: int = 200) -> Response:
    """The enveloped answer; in cookie mode without the refresh token, which goes in the cookie."""
    data = result.model_dump(mode="json", by_alias=True)
    if mode == "json":
        return envelope.success(data, status)
    token = data["tokens"].pop("refresh_token")
    response = envelope.success(data, status)
    for path in COOKIE_PATHS:
        response.headers.add("Set-Cookie", _cookie(call, token, path, call.settings.refresh_absolute_ttl))
    return response


def logged_out(call: Call, mode: Mode) -> Response:
    """204; in cookie mode both cookies are expired."""
    response = envelope.empty()
    if mode == "cookie":
        for path in COOKIE_PATHS:
            response.headers.add("Set-Cookie", _cookie(call, "", path, 0))
    return response


def _cookie(call: Call, value: str, path: str, max_age: int) -> str:
    origin = call.request.headers.get("Origin", "")
    secure = "; Secure" if origin.startswith("https://") else ""
    return f"{COOKIE_NAME}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
