"""Platform services that belong to no feature: health, the OpenAPI document."""
