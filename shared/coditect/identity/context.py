"""`TenantContext`: who is calling. Only the authentication middleware can build one.

Every repository takes a TenantContext, and the tenant id in it is the only one repositories
use, so no tenant id is ever taken from a body, path, query or header. The constructor demands
a module-private mint token: `mint()` is imported by the middleware (and by test helpers that
say so in their name), nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the type: access_tokens imports PyJWT and cryptography
    from coditect.identity.access_tokens import Role

_MINT = object()


@dataclass(frozen=True)
class TenantContext:
    tenant_id: str
    user_id: str
    session_id: str
    role: Role
    _mint: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise PermissionError("a TenantContext is built only by the authentication middleware")

    @property
    def is_admin(self) -> bool:
        return self.role in ("owner", "admin")


def mint(*, tenant_id: str, user_id: str, session_id: str, role: Role) -> TenantContext:
    """Build a context; callable only from authentication code (and tests that say so)."""
    return TenantContext(tenant_id, user_id, session_id, role, _MINT)
