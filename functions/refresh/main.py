"""POST /api/v5/auth/refresh — rotate a refresh token (single use, reuse revokes the session).

JSON mode takes the token from the body; cookie mode (`coditect.identity.cookies`) from the
HttpOnly cookie, and sets its successor there."""

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.identity import cookies
from coditect.identity import refresh as flows

app = FunctionApp("refresh")


@app.route("auth.refresh")
def refresh(call: Call) -> Response:
    mode = cookies.mode_of(call)
    token = cookies.refresh_body(call, mode).refresh_token
    return cookies.answer(call, mode, flows.refresh(call.db, call.settings, call.origin, token))


handle = app.entrypoint()
