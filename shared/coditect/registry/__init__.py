"""Every function and route of the platform, in one registry (see `spec`).

Each area declares its functions in its own module; add one import line here per area.
"""

from __future__ import annotations

from coditect.registry import console as console_area
from coditect.registry import files, identity, platform, workspaces
from coditect.registry import ops as ops_area
from coditect.registry import relay as relay_area
from coditect.registry import sessions as sessions_area
from coditect.registry.spec import FunctionSpec, Route, resolve

FUNCTIONS: tuple[FunctionSpec, ...] = (
    *platform.FUNCTIONS,
    *identity.FUNCTIONS,
    *sessions_area.FUNCTIONS,
    *workspaces.FUNCTIONS,
    *relay_area.FUNCTIONS,
    *files.FUNCTIONS,
    *ops_area.FUNCTIONS,
    *console_area.FUNCTIONS,
)

__all__ = ["FUNCTIONS", "FunctionSpec", "Route", "function", "resolve", "routes"]


def function(name: str) -> FunctionSpec:
    for spec in FUNCTIONS:
        if spec.name == name:
            return spec
    raise KeyError(f"no function named {name!r} in the registry")


def routes() -> list[tuple[FunctionSpec, Route]]:
    return [(spec, route) for spec in FUNCTIONS for route in spec.routes]
