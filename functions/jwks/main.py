"""GET /api/v5/auth/jwks — the public keys that verify access tokens (not enveloped)."""

from typing import Any

from coditect.http import Call, FunctionApp, Reply
from coditect.identity import keyring

app = FunctionApp("jwks")


@app.route("auth.jwks")
def jwks(call: Call) -> Reply:
    keys: dict[str, Any] = keyring.verifier(call.settings).jwks()
    # Short public caching: a newly published key reaches clients within minutes (docs/identity.md).
    return Reply(keys, headers={"Cache-Control": "public, max-age=300"})


handle = app.entrypoint()
