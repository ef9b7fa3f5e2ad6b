"""A gateway process for the sync tests and benchmark: the devstack's `Gateway` over the given
function URLs, counting the requests it forwards (`GET /__count` → {"PUT": n, ...}).

    python tests/e2e/sync_gateway.py PORT '{"files": "http://127.0.0.1:1234", ...}'
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import uvicorn

from coditect import registry
from coditect.devstack.gateway import Gateway
from coditect.devstack.routing import RouteTable

COUNTS: Counter[str] = Counter()


def app(upstreams: dict[str, str]) -> Any:
    gateway = Gateway(RouteTable(registry.FUNCTIONS), upstreams)

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__count":
            body = json.dumps(COUNTS).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http":
            COUNTS[scope["method"]] += 1
            if "/files/" in scope["path"] or scope["path"].endswith("/files"):
                COUNTS[f"{scope['method']} files"] += 1
        await gateway(scope, receive, send)

    return counting


if __name__ == "__main__":
    port, upstreams = int(sys.argv[1]), json.loads(sys.argv[2])
    uvicorn.run(app(upstreams), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
