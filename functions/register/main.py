"""POST /api/v5/auth/register — create an account (and a tenant unless joining by invite).

Cookie mode (`coditect.identity.cookies`) puts the refresh token in an HttpOnly cookie."""

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.identity import accounts, cookies

app = FunctionApp("register")


@app.route("auth.register")
def register(call: Call) -> Response:
    mode = cookies.mode_of(call)
    result = accounts.register(call.db, call.settings, call.origin, call.body)
    return cookies.answer(call, mode, result, status=201)


handle = app.entrypoint()
