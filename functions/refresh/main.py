"""POST /api/v5/auth/refresh — rotate a refresh token (single use, reuse revokes the session)."""

from coditect.http import Call, FunctionApp
from coditect.identity import refresh as flows
from coditect.identity.models import RefreshOut

app = FunctionApp("refresh")


@app.route("auth.refresh")
def refresh(call: Call) -> RefreshOut:
    return flows.refresh(call.db, call.settings, call.origin, call.body.refresh_token)


handle = app.entrypoint()
