"""The default workspace program: what the local provisioner runs when no command is configured.

    python -m coditect.workspaces.program --host 127.0.0.1 --port 8000

Endpoints: ``GET /healthz`` (readiness), WebSocket ``/echo`` (echoes text and binary),
WebSocket ``/terminal`` (a real shell in a PTY: socket bytes are typed, PTY output comes back as
binary; a text message ``{"type": "resize", "cols": C, "rows": R}`` resizes), and
``/echo-http/...`` (any method: answers with the request's method, path, query, headers and body
as JSON, so relay tests can see exactly what was forwarded; `?set_cookie=<name=value>` adds that
Set-Cookie to the answer, to show it does not cross the relay). Anything else is 404.

It stands in for the Theia IDE in development and tests; it is not a sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import sys
import termios
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_READ_CHUNK = 65536
_QUEUE_CHUNKS = 64  # PTY output buffered per terminal before we stop reading (backpressure)
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def echo_http(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            # Pairs, not a dict: duplicated headers (two Host headers, say) must stay visible.
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
            "body": body.decode("utf-8", errors="replace"),
        },
        headers={"Set-Cookie": request.query_params["set_cookie"]}
        if "set_cookie" in request.query_params
        else None,
    )


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _spawn_shell(shell: str) -> tuple[int, int]:
    """Fork a shell on a new PTY; return (pid, master fd).

    pty.fork() (forkpty) rather than subprocess: the child must call setsid *and* make the slave its
    controlling terminal, which subprocess cannot do; without it the shell has no job control and
    the kernel would not SIGHUP it when we close the master. The child execs immediately.
    """
    env = dict(os.environ, TERM="xterm-256color")
    pid, master = pty.fork()
    if pid == 0:  # child
        try:
            os.execvpe(shell, [shell], env)  # noqa: S606 - the shell is the point of /terminal
        finally:
            os._exit(127)
    os.set_blocking(master, False)
    _set_winsize(master, 24, 80)
    return pid, master


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Terminal:
    """One shell on one PTY, bridged to one WebSocket."""

    def __init__(self, websocket: WebSocket, shell: str) -> None:
        self.websocket = websocket
        self.pid, self.master = _spawn_shell(shell)
        self.output: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self.loop = asyncio.get_running_loop()
        self.reading = False
        self.eof = False
        self.closed = False
        self._resume_reading()

    def _resume_reading(self) -> None:
        if not self.reading:
            self.loop.add_reader(self.master, self._on_readable)
            self.reading = True

    def _pause_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.master)
            self.reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the shell exited and the slave side is closed
            data = b""
        if not data:
            self._pause_reading()
            self.eof = True
            if not self.output.full():  # wake pump_output; if full, it sees `eof` once drained
                self.output.put_nowait(None)
            return
        self.output.put_nowait(data)
        if self.output.full():  # stop reading until the socket drains: the shell blocks, not us
            self._pause_reading()

    async def pump_output(self) -> None:
        while True:
            if self.output.empty():
                if self.eof:
                    return
                self._resume_reading()
            data = await self.output.get()
            if data is None:
                return
            await self.websocket.send_bytes(data)

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)  # the shell is not reading; hold the socket, don't buffer
                continue
            view = view[written:]

    async def pump_input(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                if not self._control(text):
                    await self._write(text.encode())
            elif message.get("bytes") is not None:
                await self._write(message["bytes"])

    def _control(self, text: str) -> bool:
        """Apply a JSON control message; return False when `text` is plain input."""
        if not text.startswith("{"):
            return False
        try:
            msg = json.loads(text)
        except ValueError:
            return False
        if not isinstance(msg, dict) or msg.get("type") != "resize":
            return False
        cols, rows = msg.get("cols"), msg.get("rows")
        if isinstance(cols, int) and isinstance(rows, int) and 0 < cols < 65536 and 0 < rows < 65536:
            _set_winsize(self.master, rows, cols)
        return True

    def close(self) -> None:
        """Kill the shell's process group and release the PTY; safe to call twice."""
        if self.closed:  # lifespan shutdown and the handler's finally may both get here
            return
        self.closed = True
        self._pause_reading()
        _kill_group(self.pid)
        os.close(self.master)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)  # SIGKILLed just above, so this returns promptly


def create_app(shell: str | None = None) -> Starlette:
    """Build the app; `shell` defaults to $CODITECT_SHELL, then bash, then sh."""
    shell_path = shell or os.environ.get("CODITECT_SHELL") or shutil.which("bash") or "/bin/sh"
    terminals: set[Terminal] = set()

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        term = Terminal(websocket, shell_path)
        terminals.add(term)
        tasks = [asyncio.create_task(term.pump_input()), asyncio.create_task(term.pump_output())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            terminals.discard(term)
            term.close()
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close()  # the shell exited: say so instead of leaving the socket open

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for term in list(terminals):  # shutdown: no shell outlives the program
            term.close()

    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/terminal", terminal),
        Route("/echo-http", echo_http, methods=_ALL_METHODS),
        Route("/echo-http/{rest:path}", echo_http, methods=_ALL_METHODS),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Coditect default workspace program")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--shell", default=None, help="shell for /terminal (default: bash, then sh)")
    args = parser.parse_args(argv)
    import uvicorn  # imported here so importing the module (tests, create_app) stays cheap

    # uvicorn turns SIGTERM into a graceful shutdown (bounded, so a stop() never waits long), then
    # restores this handler and re-raises the signal: exit 0, a clean stop, not "killed by signal".
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(args.shell),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
