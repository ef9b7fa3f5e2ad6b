"""The web console: a single-page app served at `/` with its content-hashed assets.

One small function serves the built files from memory (`coditect.http.static`); the front door
routes `/` and `/assets/...` to it by this table like any other route. Its source is
functions/console/web/ (TypeScript, built by `nox -s console` into functions/console/dist/).
"""

from coditect.registry.spec import FunctionSpec, Route

FUNCTIONS = (
    FunctionSpec(
        name="console",
        description="The web console (single-page app) and its static assets.",
        concurrency=32,  # answers from memory, no store access
        memory="128Mi",
        routes=(
            Route(
                "console.index",
                "GET",
                "/",
                auth="none",
                enveloped=False,
                summary="The web console (HTML; strict Content-Security-Policy, no-cache)",
                media="text/html",
                errors=((503, "console_not_built"),),
            ),
            Route(
                "console.asset",
                "GET",
                "/assets/<path:name>",
                auth="none",
                enveloped=False,
                summary="A content-hashed console asset (immutable; brotli/gzip when accepted)",
                media=("text/javascript", "text/css", "application/octet-stream"),
            ),
        ),
    ),
)
