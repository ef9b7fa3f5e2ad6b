"""The relay's per-process state: configuration, the grant source, live connections, pools."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from coditect.config import Settings
from coditect.relay import metrics
from coditect.relay.auth import Headers, Refusal, check_origin
from coditect.relay.grants import GrantSource, RelayDenied, RelayGrant
from coditect.relay.headers import Forwarding
from coditect.relay.limits import Connections
from coditect.workspaces.provisioner import Endpoint

T = TypeVar("T")
_MAX_POOLS = 512  # distinct workspaces with an HTTP pool in one process; older pools are retired


@dataclass(frozen=True)
class RelayConfig:
    allowed_origins: frozenset[str]
    max_message_size: int
    max_queue: int
    ping_interval: float
    connect_timeout: float
    read_timeout: float
    idle_timeout: float
    revocation_interval: float
    per_user: int
    forwarding: Forwarding

    @classmethod
    def of(cls, settings: Settings) -> RelayConfig:
        public = urlsplit(settings.public_base_url)
        return cls(
            allowed_origins=frozenset(settings.cors_origins),
            max_message_size=settings.relay_max_message_size,
            max_queue=settings.relay_max_queue,
            ping_interval=settings.relay_ping_interval,
            connect_timeout=settings.relay_connect_timeout,
            read_timeout=settings.relay_read_timeout,
            idle_timeout=settings.relay_idle_timeout,
            revocation_interval=settings.relay_revocation_interval,
            per_user=settings.relay_max_connections_per_user,
            forwarding=Forwarding(
                public.scheme or "https",
                public.netloc,
                settings.trusted_proxy_hops,
                settings.client_ip_header,
            ),
        )


def _no_cookies() -> httpx.Cookies:
    # The pools are shared by every user of a workspace: never keep a response's cookies.
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


class RelayState:
    def __init__(self, config: RelayConfig, grants: GrantSource) -> None:
        self.config = config
        self.grants = grants
        self.connections = Connections(config.per_user)
        # Store calls run here, not in the loop's default pool, so a slow store cannot starve
        # anything else that uses to_thread.
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="relay-store")
        # (tenant, workspace) with HTTP traffic since the watcher's last sweep (idle-stop input).
        self.http_activity: set[tuple[str, str]] = set()
        self._pools: OrderedDict[tuple[str, int], httpx.AsyncClient] = OrderedDict()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def check_origin(self, headers: Headers, workspace_id: str, ticket: str | None) -> None:
        """The exact-match Origin check; a ticket presented with a refused Origin is spent first
        (consumed, whatever its outcome), so a page that saw it cannot retry it from elsewhere."""
        try:
            check_origin(headers, self.config.allowed_origins)
        except Refusal:
            if ticket is not None:
                with contextlib.suppress(RelayDenied):
                    await self.run(self.grants.consume_ticket, ticket, workspace_id)
            raise

    async def authorize(self, workspace_id: str, ticket: str | None, cookie: str | None) -> RelayGrant:
        """The grant for a ticket (consumed) or else a cookie; raises Refusal (401/403)."""
        try:
            if ticket is not None:
                return await self.run(self.grants.consume_ticket, ticket, workspace_id)
            if cookie is not None:
                return await self.run(self.grants.check_cookie, cookie, workspace_id)
            raise RelayDenied("missing")
        except RelayDenied as denied:
            refusal = Refusal.of(denied)
            metrics.REFUSED.labels(status=str(refusal.status)).inc()
            raise refusal from None

    def touch(self, grant: RelayGrant) -> None:
        self.http_activity.add((grant.tenant_id, grant.workspace_id))

    def pool(self, endpoint: Endpoint) -> httpx.AsyncClient:
        """The HTTP connection pool of one workspace endpoint (LRU-bounded)."""
        key = (endpoint.host, endpoint.port)
        client = self._pools.get(key)
        if client is not None:
            self._pools.move_to_end(key)
            return client
        c = self.config
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout, pool=c.connect_timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=30),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment may reroute relay traffic
            cookies=_no_cookies(),
        )
        self._pools[key] = client
        if len(self._pools) > _MAX_POOLS:
            _, old = self._pools.popitem(last=False)
            # Responses may still be streaming from the retired pool: close it once they are done.
            asyncio.get_running_loop().call_later(c.read_timeout, lambda: asyncio.ensure_future(old.aclose()))
        return client

    async def aclose(self) -> None:
        for client in self._pools.values():
            await client.aclose()
        self._pools.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
