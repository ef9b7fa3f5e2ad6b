"""The health check: can the store be read, and written? (api-v5.md, "Health").

When the store can be read but its disk is (nearly) full — the space guard of the embedded store
says so (coditect.store.space) — the answer is 503 `store_unwritable` with `data.store =
"unwritable"`, so an uptime check sees it, while reads keep working. (The healthy answer keeps
exactly the contract's two fields.)
"""

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

    def __init__(
        self, data: dict[str, str] | None = None, *, code: str | None = None, message: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.data = data or Health(status="unhealthy").model_dump()


_PROBE_KEY = PROBE.key()
_HEALTHY = Health(status="healthy")  # the same answer every time: built once
_UNWRITABLE: dict[str, str] = {**Health(status="unhealthy").model_dump(), "store": "unwritable"}


def check(get_db: Callable[[], Database]) -> Health:
    """Read the probe key (one point read, its own transaction); any failure to open or read the
    store is unhealthy, and so is a store whose disk is too full to write."""
    try:
        db = get_db()
        db.read(_PROBE_KEY)
    except Exception as exc:  # noqa: BLE001 — sqlite3, fdb and OS errors all mean "cannot read"
        log.warning("health: store unreadable", extra={"fields": {"error": type(exc).__name__}})
        raise Unhealthy() from None
    guard = getattr(db, "space", None)
    if guard is not None and guard.low():
        raise Unhealthy(dict(_UNWRITABLE), code="store_unwritable", message="The store's disk is full.")
    return _HEALTHY
