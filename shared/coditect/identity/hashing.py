"""The process's `Passwords` (Argon2id), built from the settings once per parameter set.

Production parameters are OWASP's minimum or above; anything lower is refused at first use
unless `argon2_weak_params_for_tests` is set. Tests that count Argon2 operations install a
`Passwords` with a counting backend through `override`.
"""

from __future__ import annotations

import functools

from coditect.config import Settings
from coditect.identity.passwords import Argon2Params, Passwords

_override: Passwords | None = None


def params_of(settings: Settings) -> Argon2Params:
    return Argon2Params(
        memory_cost=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )


@functools.lru_cache(maxsize=4)
def _build(params: Argon2Params, allow_weak: bool) -> Passwords:
    return Passwords(params, allow_weak_params=allow_weak)


def passwords(settings: Settings) -> Passwords:
    """The hasher every identity path uses (one dummy hash per parameter set and process)."""
    if _override is not None:
        return _override
    return _build(params_of(settings), settings.argon2_weak_params_for_tests)


def override(instance: Passwords | None) -> None:
    """Install (or with None remove) a specific `Passwords`. Tests only."""
    global _override
    _override = instance
