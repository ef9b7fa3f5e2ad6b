"""GET /api/v5/openapi.json — the OpenAPI 3.1 document of every route (bare, not enveloped)."""

import json

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.platform import openapi

app = FunctionApp("openapi")
_body: bytes | None = None


@app.route("openapi.get")
def get_openapi(call: Call) -> Response:
    global _body
    if _body is None:  # built on first use: it imports every area's models
        _body = json.dumps(openapi.document(), separators=(",", ":"), ensure_ascii=False).encode()
    return Response(
        _body, status=200, mimetype="application/json", headers={"Cache-Control": "public, max-age=300"}
    )


handle = app.entrypoint()
