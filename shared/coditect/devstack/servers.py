"""In-process ASGI servers (the broker) on the supervisor's event loop, and their logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from coditect.http import logs


class PortInUse(Exception):
    """The configured port is taken (say which setting changes it)."""


def bind(host: str, port: int) -> socket.socket:
    """Bind now, so a taken port is a clear error at start rather than uvicorn's sys.exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the supervisor (several run on one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Served:
    """One ASGI app served on an already bound socket until `stop()`."""

    def __init__(self, app: Any, sock: socket.socket, *, access_log: bool = True) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=access_log,
            lifespan="on",
            ws_max_size=64 * 1024 * 1024,
            timeout_graceful_shutdown=3,
            proxy_headers=False,  # loopback only: the socket peer is the caller
            server_header=False,  # the function's own Server and Date headers pass through
            date_header=False,
        )
        self.sock = sock
        self.server = _Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()  # re-raise why it could not start
                raise RuntimeError("server stopped during start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sock.close()


def log_to_file(path: Path, *loggers: str, level: int = logging.INFO) -> None:
    """Send the named loggers to `path` (appending), and not to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logs.RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in loggers:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
