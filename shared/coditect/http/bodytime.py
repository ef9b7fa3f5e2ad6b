"""A request body's read time is bounded, and a body nobody needs is never read (issue 15 item 16).

Slow clients must not hold a function's threads (functions-framework runs gunicorn with
`THREADS` = the function's concurrency, and Knative's queue-proxy does not buffer bodies):

- **Minimum data rate** (as Kestrel's MinRequestBodyDataRate): reading the body may take at most
  `body_grace_seconds + bytes_read / body_min_rate`. Past that — a client trickling at 1 byte/s,
  or one that stopped sending — the read fails with 408 `request_timeout` and the connection is
  closed. Under gunicorn each socket read also gets that remaining time as its timeout, so a
  client that sends nothing at all cannot block a read forever.
- **No read of an unneeded body**: authentication (and every other check the runtime makes from
  the headers) runs before the body is touched. When the answer is ready and the body was not
  read to its end — a 401 for an upload without a token, a 413, a 404 — the runtime marks the body
  as consumed (so functions-framework's `read_request` hook does not drain it) and has the server
  close the connection after the answer instead of reading the rest of the body to reach a next
  request (gunicorn ignores a `Connection` header from the app, so `CloseAware` — installed around
  the Flask app — calls gunicorn's own `force_close()`; other servers see `Connection: close`).
  The 401 leaves at once, whatever the client still means to send.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from flask import Request, Response

from coditect.errors import ApiError

ENVIRON_KEY = "coditect.timed_input"
CLOSE_KEY = "coditect.close_connection"


class RequestTimeout(ApiError):
    status = 408
    default_code = "request_timeout"
    default_message = "The request body arrived too slowly."

    def __init__(self) -> None:
        super().__init__(headers={"Connection": "close"})


class TimedInput:
    """`wsgi.input` with a deadline that grows with the bytes read (see the module docstring)."""

    def __init__(self, raw: Any, *, grace: float, min_rate: float, sock: socket.socket | None) -> None:
        self.raw = raw
        self.grace = grace
        self.min_rate = max(1.0, min_rate)
        self.sock = sock
        self.started = time.monotonic()
        self.read_bytes = 0
        self.finished = False  # the stream said end of body (a read returned b"")
        self.timed_out = False

    def _remaining(self) -> float:
        allowed = self.grace + self.read_bytes / self.min_rate
        return allowed - (time.monotonic() - self.started)

    def _call(self, method: Any, *args: Any) -> bytes:
        remaining = self._remaining()
        if remaining <= 0:
            self.timed_out = True
            raise RequestTimeout()
        previous = None
        if self.sock is not None:
            previous = self.sock.gettimeout()
            self.sock.settimeout(remaining)
        try:
            data: bytes = method(*args)
        except TimeoutError:
            self.timed_out = True
            raise RequestTimeout() from None
        finally:
            if self.sock is not None:
                self.sock.settimeout(previous)
        if not data:
            self.finished = True
        self.read_bytes += len(data)
        if self._remaining() < 0:  # the data came, but too slowly
            self.timed_out = True
            raise RequestTimeout()
        return data

    def read(self, size: int = -1) -> bytes:
        return self._call(self.raw.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._call(self.raw.readline, size)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()


def _expects_body(request: Request) -> bool:
    environ = request.environ
    return bool(request.content_length) or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def install(request: Request, *, grace: float, min_rate: float) -> None:
    """Wrap the request's body stream before anything reads it (a no-op without a body)."""
    environ = request.environ
    if ENVIRON_KEY in environ or not _expects_body(request):
        return
    timed = TimedInput(
        environ["wsgi.input"], grace=grace, min_rate=min_rate, sock=environ.get("gunicorn.socket")
    )
    environ["wsgi.input"] = timed
    environ[ENVIRON_KEY] = timed


def finish(request: Request, response: Response) -> None:
    """After the answer is made: a body not read to its end is left unread and the connection
    closed (see the module docstring)."""
    timed: TimedInput | None = request.environ.get(ENVIRON_KEY)
    if timed is None:
        return
    complete = timed.finished or (
        request.content_length is not None and timed.read_bytes >= request.content_length
    )
    if complete and not timed.timed_out:
        return
    request._cached_data = b""  # functions-framework's after_request hook calls get_data()
    response.headers["Connection"] = "close"
    request.environ[CLOSE_KEY] = True


LINGER_SECONDS = 0.5  # how long a refused body may still arrive before the socket stops reading


def linger_close(sock: socket.socket) -> None:
    """Half-close after the answer, read and drop what arrives for at most `LINGER_SECONDS` (so
    the client can read the answer before any reset), then stop reading.

    Done here, in the request's worker thread, because gunicorn's own graceful close lingers up
    to 2 s on its main loop, which a trickling client turns into a stall of the whole worker."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)  # gunicorn's close then finds nothing left to wait for


class _Lingering:
    """The answer's iterable; on close (after gunicorn wrote the answer), `linger_close`."""

    def __init__(self, inner: Any, sock: socket.socket) -> None:
        self.inner = inner
        self.sock = sock

    def __iter__(self) -> Any:
        return iter(self.inner)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            linger_close(self.sock)


class CloseAware:
    """WSGI middleware: when the runtime asked for it (`CLOSE_KEY`), tell gunicorn to close the
    connection after this answer (its `Response.force_close`), so it never drains the unread body,
    and end the connection with a short lingering close in this worker thread."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if environ.get(CLOSE_KEY):
                server_response = getattr(start_response, "__self__", None)
                force_close = getattr(server_response, "force_close", None)
                if callable(force_close):
                    force_close()
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, start)
        sock = environ.get("gunicorn.socket")
        if environ.get(CLOSE_KEY) and sock is not None:
            return _Lingering(result, sock)
        return result
