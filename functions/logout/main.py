"""POST /api/v5/auth/logout — revoke the caller's login session (204, idempotent)."""

from coditect.http import Call, FunctionApp
from coditect.identity import refresh as flows

app = FunctionApp("logout")


@app.route("auth.logout")
def logout(call: Call) -> None:
    flows.logout(call.db, call.ctx, call.origin)


handle = app.entrypoint()
