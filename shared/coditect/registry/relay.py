"""The relay: its own Knative Service, autoscaled on concurrent connections.

It declares no routes: it is not part of /api/v5 and has no FunctionApp handlers. The local
gateway sends `/workspaces` and everything under it (HTTP and WebSocket) to the one function of
kind "asgi"; the ingress does the same with a prefix rule. Its paths are
`/workspaces/<uuid:id>/<path:rest>` (any method), answered by coditect.relay.

It runs as a Deployment + HorizontalPodAutoscaler, not a Knative Service (coditect.deploy.relay
says why); min/max_scale bound the HPA. Its uvicorn settings come from `Settings`
(coditect.relay.server), so it declares no environment of its own.
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
    ),
)
