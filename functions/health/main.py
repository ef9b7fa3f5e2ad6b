"""GET /api/v5/health — 200 healthy, or 503 unhealthy when the store cannot be read."""

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.http.envelope import json_response
from coditect.platform import health

app = FunctionApp("health")


@app.route("health.get")
def get_health(call: Call) -> Response | health.Health:
    try:
        return health.check(lambda: app.db)
    except health.Unhealthy as exc:
        body = {
            "success": False,
            "data": exc.data,
            "error": {"code": exc.code, "message": exc.message},
            "request_id": call.request_id,
        }
        return json_response(body, exc.status)


handle = app.entrypoint()
