"""The health check: can the store be read? (api-v5.md, "Health")."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from coditect.errors import ServiceUnavailable
from coditect.keyspace import PROBE
from coditect.store import Database

SERVICE = "coditect-v5-api"
log = logging.getLogger(__name__)


class Health(BaseModel):
    service: str = SERVICE
    status: Literal["healthy", "unhealthy"]


class Unhealthy(ServiceUnavailable):
    """503 that keeps the health body's `data` beside the error, so probes read one shape."""

    default_code = "unhealthy"
    default_message = "The store cannot be read."


_PROBE_KEY = PROBE.key()
_HEALTHY = Health(status="healthy")  # the same answer every time: built once


def check(get_db: Callable[[], Database]) -> Health:
    """Read the probe key (one point read, its own transaction); any failure to open or read the
    store is unhealthy."""
    try:
        get_db().read(_PROBE_KEY)
    except Exception as exc:  # noqa: BLE001 — sqlite3, fdb and OS errors all mean "cannot read"
        log.warning("health: store unreadable", extra={"fields": {"error": type(exc).__name__}})
        raise Unhealthy() from None
    return _HEALTHY
