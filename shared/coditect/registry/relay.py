"""The relay: its own Knative Service, autoscaled on concurrent connections.

It declares no routes: it is not part of /api/v5 and has no FunctionApp handlers. The local
gateway sends `/workspaces` and everything under it (HTTP and WebSocket) to the one function of
kind "asgi"; the ingress does the same with a prefix rule. Its paths are
`/workspaces/<uuid:id>/<path:rest>` (any method), answered by coditect.relay.

`concurrency` is Knative's containerConcurrency: relayed WebSockets per pod (each costs tens of
KiB; see bench/results/relay.json). uvicorn reads the UVICORN_* variables (its CLI's envvar
prefix) so the server-side WebSocket settings match the relay's own (CODITECT_RELAY_*).
"""

from coditect.registry.spec import FunctionSpec

FUNCTIONS = (
    FunctionSpec(
        name="relay",
        kind="asgi",
        description="Authenticated HTTP/WebSocket relay to workspaces (/workspaces/{id}/{rest}).",
        extras=("relay",),
        concurrency=1000,
        min_scale=1,  # a cold start would stall every terminal reconnect
        max_scale=20,
        memory="512Mi",
        cpu="1000m",
        env=(
            ("UVICORN_LOOP", "uvloop"),
            ("UVICORN_HTTP", "httptools"),
            ("UVICORN_WS", "websockets-sansio"),
            ("UVICORN_WS_MAX_SIZE", str(4 * 1024 * 1024)),  # = relay_max_message_size
            ("UVICORN_WS_PER_MESSAGE_DEFLATE", "false"),
            ("UVICORN_WS_PING_INTERVAL", "20"),
            ("UVICORN_WS_PING_TIMEOUT", "20"),
            ("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "5"),
            ("UVICORN_PROXY_HEADERS", "false"),  # the relay reads X-Forwarded-For itself
        ),
    ),
)
