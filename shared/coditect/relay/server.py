"""The relay's server: uvicorn with settings from `Settings`, and a drain on SIGTERM.

`options(settings)` is the ONE place the relay's uvicorn settings come from (the container, the
local stack and `python -m coditect.relay` all run through `serve`): frames above the message
limit are refused while being read, permessage-deflate is off (CPU over bandwidth; no compression
of frames carrying secrets), the client side is pinged like the workspace side, and uvicorn's
proxy-headers handling is off because the client address is read by coditect.http.client_ip
(`client_ip_header` / `trusted_proxy_hops`), never by uvicorn.

Drain: the first SIGTERM/SIGINT does not stop the server. The app fails its readiness probe at
once (`RelayApp.drain`), keeps relaying for `relay_drain_seconds` while the endpoint leaves the
Service and the ingress, then closes every relayed socket with 1012 "service restart"
(`RelayApp.close_all`) so clients reconnect elsewhere, gives the closes a moment to go out, and
only then lets uvicorn shut down. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn

from coditect.config import Settings

log = logging.getLogger("coditect.relay")
CLOSE_WAIT = 3.0  # seconds for the 1012 closes to go out before uvicorn stops


def options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the relay, from the settings."""
    return {
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",  # coditect.relay.wsraw takes sockets over from exactly this
        "ws_max_size": settings.relay_max_message_size,
        "ws_per_message_deflate": False,
        "ws_ping_interval": settings.relay_ping_interval,
        "ws_ping_timeout": settings.relay_ping_interval,
        "proxy_headers": False,  # the one proxy-headers setting (see the module docstring)
        "log_config": None,
        "timeout_graceful_shutdown": 5,
    }


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains the app (if it can) before stopping."""

    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app: Any = self.config.app
        if self._draining or self._loop is None or not hasattr(app, "close_all"):
            return super().handle_exit(sig, frame)
        self._draining = True
        log.info("relay: %s received, draining for %.1f s", signal.Signals(sig).name, self.drain_seconds)
        app.drain()
        # A signal handler runs between bytecodes of the loop's thread: hand over through the
        # loop's self-pipe so the loop wakes up.
        self._loop.call_soon_threadsafe(self._start, app)

    def _start(self, app: Any) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(app))

    async def _drain(self, app: Any) -> None:
        await asyncio.sleep(self.drain_seconds)
        closed = app.close_all()
        log.info("relay: asked %d relayed sockets to reconnect (1012)", closed)
        deadline = asyncio.get_running_loop().time() + CLOSE_WAIT
        while len(app.state.connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self.should_exit = True


def serve(app: Any, host: str, port: int, settings: Settings) -> None:
    config = uvicorn.Config(app, host=host, port=port, **options(settings))
    DrainingServer(config, settings.relay_drain_seconds).run()
