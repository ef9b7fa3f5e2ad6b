"""POST /api/v5/auth/login — email and password for tokens (throttled, no enumeration)."""

from coditect.http import Call, FunctionApp
from coditect.identity import accounts
from coditect.identity.models import AuthOut

app = FunctionApp("login")


@app.route("auth.login")
def login(call: Call) -> AuthOut:
    return accounts.login(call.db, call.settings, call.origin, call.body)


handle = app.entrypoint()
