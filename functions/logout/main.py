"""POST /api/v5/auth/logout — revoke the caller's login session (204, idempotent); cookie mode
also expires the refresh cookie (`coditect.identity.cookies`)."""

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.identity import cookies
from coditect.identity import refresh as flows

app = FunctionApp("logout")


@app.route("auth.logout")
def logout(call: Call) -> Response:
    mode = cookies.mode_of(call)
    flows.logout(call.db, call.ctx, call.origin)
    return cookies.logged_out(call, mode)


handle = app.entrypoint()
