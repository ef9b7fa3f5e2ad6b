"""The clock identity reads: session lifetimes, grace windows, throttles, token times.

Tests inject time with `set_clock(lambda: t)` (the `identity_clock` fixture does, and restores
it); nothing here sleeps. Production reads `time.time()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_source: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch, from the current clock source."""
    return _source()


def set_clock(source: Callable[[], float] | None) -> None:
    """Replace the clock (None restores the system clock). Tests only."""
    global _source
    _source = source or time.time
