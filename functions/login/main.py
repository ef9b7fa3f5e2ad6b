"""POST /api/v5/auth/login — email and password for tokens (throttled, no enumeration).

Cookie mode (`coditect.identity.cookies`) puts the refresh token in an HttpOnly cookie."""

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.identity import accounts, cookies

app = FunctionApp("login")


@app.route("auth.login")
def login(call: Call) -> Response:
    mode = cookies.mode_of(call)
    return cookies.answer(call, mode, accounts.login(call.db, call.settings, call.origin, call.body))


handle = app.entrypoint()
