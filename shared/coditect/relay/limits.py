"""The live relayed WebSockets of this process: per-user cap, activity, and how to close one.

The cap is per relay process (replicas do not share counts): with N replicas a user can hold up
to N * cap sockets. It exists to stop one user exhausting a replica's file descriptors and
memory, which is per process too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from coditect.relay.auth import Refusal
from coditect.workspaces.tickets import RelayGrant

GrantKey = tuple[str, str, str, str]  # tenant, user, login session, workspace


def grant_key(grant: RelayGrant) -> GrantKey:
    return (grant.tenant_id, grant.user_id, grant.session_id, grant.workspace_id)


class Live:
    """One relayed WebSocket. The proxy updates the counters; the watcher calls `close`."""

    __slots__ = (
        "_on_close",
        "bytes_in",
        "bytes_out",
        "close_code",
        "close_reason",
        "grant",
        "key",
        "last_activity",
    )

    def __init__(self, grant: RelayGrant) -> None:
        self.grant = grant
        self.key = grant_key(grant)
        self.last_activity = asyncio.get_running_loop().time()
        self.bytes_in = 0  # client → workspace, not yet counted in metrics
        self.bytes_out = 0  # workspace → client
        self.close_code: int | None = None
        self.close_reason = ""
        self._on_close: Callable[[], None] | None = None

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close = callback

    def close(self, code: int, reason: str) -> None:
        """Ask the proxy to end this connection with `code` (first call wins)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        if self._on_close is not None:
            self._on_close()


class Connections:
    """Registry of live relayed WebSockets, counted per (tenant, user)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._live: set[Live] = set()
        self._per_user: dict[tuple[str, str], int] = {}

    def admit(self, grant: RelayGrant) -> Live:
        user = (grant.tenant_id, grant.user_id)
        count = self._per_user.get(user, 0)
        if count >= self.per_user:
            raise Refusal(429, "rate_limited", "connection_cap", headers=[("Retry-After", "5")])
        self._per_user[user] = count + 1
        live = Live(grant)
        self._live.add(live)
        return live

    def release(self, live: Live) -> None:
        if live not in self._live:
            return
        self._live.discard(live)
        user = (live.grant.tenant_id, live.grant.user_id)
        left = self._per_user.get(user, 1) - 1
        if left > 0:
            self._per_user[user] = left
        else:
            self._per_user.pop(user, None)

    def snapshot(self) -> list[Live]:
        return list(self._live)

    def __len__(self) -> int:
        return len(self._live)
