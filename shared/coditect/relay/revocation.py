"""The per-process revocation watcher: one background task for every live connection.

Every `interval` (≤ 2 s) it takes the distinct grants of the open WebSockets, asks the store in a
worker thread whether each is still valid (`GrantSource.still_valid`: login session live, same
user, workspace `ready`, grant not expired) and closes the connections of those that are not
with 4401. Logout, password change, refresh-token reuse and stopping the workspace all clear one
of the keys that check reads, so a revoked socket closes within interval + one sweep, far inside
the contract's 5 s. The same sweep closes idle connections (1001), writes throttled activity for
idle stop, and moves byte counts into the metrics.

A sweep that fails (store unreachable) keeps connections open and logs: availability over a
revocation that cannot be confirmed; the next successful sweep catches up.
"""

from __future__ import annotations

import asyncio
import logging
import time

from coditect.relay import metrics
from coditect.relay.grants import RelayGrant
from coditect.relay.limits import GrantKey, Live
from coditect.relay.state import RelayState

log = logging.getLogger("coditect.relay")
REVOKED = 4401
IDLE = 1001


def flush_bytes(live: Live) -> None:
    if live.bytes_in:
        metrics.BYTES.labels(direction="in").inc(live.bytes_in)
        live.bytes_in = 0
    if live.bytes_out:
        metrics.BYTES.labels(direction="out").inc(live.bytes_out)
        live.bytes_out = 0


class Watcher:
    def __init__(self, state: RelayState) -> None:
        self.state = state
        self.grants = state.grants
        self.connections = state.connections
        interval, idle_timeout = state.config.revocation_interval, state.config.idle_timeout
        self.interval = interval
        self.idle_timeout = idle_timeout
        self._last_sweep = time.monotonic()  # the loop's clock on Linux (both CLOCK_MONOTONIC)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay: revocation sweep failed; connections kept until the next one")

    async def sweep(self) -> None:
        live = self.connections.snapshot()
        loop = asyncio.get_running_loop()
        now = loop.time()
        since, self._last_sweep = self._last_sweep, now
        active, self.state.http_activity = self.state.http_activity, set()
        if not live:
            if active:
                await self.state.run(self._check, [], active)
            return
        distinct: dict[GrantKey, RelayGrant] = {}
        for conn in live:
            distinct.setdefault(conn.key, conn.grant)
            if conn.last_activity >= since:
                active.add((conn.grant.tenant_id, conn.grant.workspace_id))
            flush_bytes(conn)
        keys = list(distinct)
        valid = await self.state.run(self._check, [distinct[k] for k in keys], active)
        revoked = {k for k, ok in zip(keys, valid, strict=True) if not ok}
        for conn in live:
            if conn.key in revoked:
                metrics.CLOSED.labels(cause="revoked").inc()
                conn.close(REVOKED, "revoked")
            elif now - conn.last_activity > self.idle_timeout:
                metrics.CLOSED.labels(cause="idle").inc()
                conn.close(IDLE, "idle")

    def _check(self, grants: list[RelayGrant], active: set[tuple[str, str]]) -> list[bool]:
        if active:
            try:
                self.grants.record_activity(active)
            except Exception:  # activity is advisory (idle stop); never fail revocation over it
                log.warning("relay: recording activity failed", exc_info=True)
        return self.grants.still_valid(grants)
