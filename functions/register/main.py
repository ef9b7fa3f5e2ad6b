"""POST /api/v5/auth/register — create an account (and a tenant unless joining by invite)."""

from coditect.http import Call, FunctionApp
from coditect.identity import accounts
from coditect.identity.models import AuthOut

app = FunctionApp("register")


@app.route("auth.register")
def register(call: Call) -> AuthOut:
    return accounts.register(call.db, call.settings, call.origin, call.body)


handle = app.entrypoint()
