"""What the relay asks the store, behind one small interface (`GrantSource`).

The implementation is `StoreGrants` over `coditect.workspaces.tickets` (validation and
consumption happen there, in one transaction; the relay keeps no credential state of its own).
Every method is synchronous (store calls); the relay runs them in worker threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from coditect.store import Database
from coditect.workspaces import tickets
from coditect.workspaces.tickets import COOKIE_NAME, RelayCookie, RelayDenied, RelayGrant

__all__ = ["COOKIE_NAME", "GrantSource", "RelayCookie", "RelayDenied", "RelayGrant", "StoreGrants"]


class GrantSource(Protocol):
    """Credential checks for the relay. `consume_ticket`/`check_cookie` raise `RelayDenied`."""

    def consume_ticket(self, ticket: str | None, workspace_id: str) -> RelayGrant: ...

    def check_cookie(self, token: str | None, workspace_id: str) -> RelayGrant: ...

    def open_cookie(self, grant: RelayGrant) -> RelayCookie: ...

    def still_valid(self, grants: Sequence[RelayGrant]) -> list[bool]:
        """One answer per grant (same order): False once revoked, expired or stopped."""
        ...

    def record_activity(self, workspaces: Iterable[tuple[str, str]]) -> None:
        """Note relayed traffic for `(tenant_id, workspace_id)` pairs (throttled downstream)."""
        ...


class StoreGrants:
    """`GrantSource` backed by the store (`coditect.workspaces.tickets`).

    `cookie_secure` overrides the cookie's Secure attribute (None: keep the tickets module's
    choice, Secure exactly when the public base URL is https).
    """

    def __init__(self, db: Database, *, cookie_secure: bool | None = None) -> None:
        self.db = db
        self.cookie_secure = cookie_secure

    def consume_ticket(self, ticket: str | None, workspace_id: str) -> RelayGrant:
        return tickets.consume_ticket(self.db, ticket, workspace_id)

    def check_cookie(self, token: str | None, workspace_id: str) -> RelayGrant:
        return tickets.check_cookie(self.db, token, workspace_id)

    def open_cookie(self, grant: RelayGrant) -> RelayCookie:
        cookie = tickets.open_cookie_session(self.db, grant)
        return cookie if self.cookie_secure is None else replace(cookie, secure=self.cookie_secure)

    def still_valid(self, grants: Sequence[RelayGrant]) -> list[bool]:
        # One small read transaction per distinct grant (two point reads each); a relay process
        # holds a few hundred distinct grants at most, so a sweep stays well under its interval.
        return [tickets.grant_still_valid(self.db, grant) for grant in grants]

    def record_activity(self, workspaces: Iterable[tuple[str, str]]) -> None:
        for tenant_id, workspace_id in workspaces:
            tickets.record_activity(self.db, tenant_id, workspace_id)
