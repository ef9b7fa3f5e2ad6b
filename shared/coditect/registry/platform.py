"""Platform functions: health and the OpenAPI document."""

from coditect.registry.spec import FunctionSpec, Route

FUNCTIONS = (
    FunctionSpec(
        name="health",
        description="Liveness of the API and its store.",
        routes=(
            Route(
                "health.get",
                "GET",
                "/api/v5/health",
                auth="none",
                summary="Service health",
                response="coditect.platform.health:Health",
                errors=((503, "unhealthy"),),
            ),
        ),
        min_scale=1,
    ),
    FunctionSpec(
        name="openapi",
        description="The OpenAPI document of every route of every function.",
        routes=(
            Route(
                "openapi.get",
                "GET",
                "/api/v5/openapi.json",
                auth="none",
                enveloped=False,
                summary="This API's OpenAPI 3.1 document",
            ),
        ),
    ),
)
